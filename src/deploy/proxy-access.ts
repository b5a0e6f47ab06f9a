// Can the proxy's user (nginx's workers: www-data on Debian) connect to the app's UNIX
// socket? connect(2) needs search (x) permission on every directory of the path and write
// permission on the socket file. "Permission denied" on the socket is the most common
// deploy failure, so this explains which component blocks and how to fix it.
import { spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

export interface ProxyUser {
  name: string;
  uid: number;
  gids: number[];
  groupNames: string[];
}

/** Owner, group and mode of a path, as it is or as it will be created. */
export interface PathPlan {
  uid: number;
  gid: number;
  mode: number;
  /** Where the planned values come from, e.g. "the .socket unit". */
  planned?: string;
}

export interface ProxyAccessReport {
  ok: boolean;
  /** Human-readable lines: one per path component, then the fixes. */
  lines: string[];
  fixes: string[];
}

function run(cmd: string, args: string[]): string | null {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

/** The user's uid and groups, from `id` (so NSS sources like LDAP count too). */
export function lookupUser(name: string): ProxyUser | null {
  const uid = run('id', ['-u', name]);
  const gids = run('id', ['-G', name]);
  const names = run('id', ['-Gn', name]);
  if (uid === null || gids === null) return null;
  return { name, uid: Number(uid), gids: gids.split(/\s+/).map(Number), groupNames: (names ?? '').split(/\s+/) };
}

/** A group name or numeric gid to a gid (getent), or null when unknown. */
export function lookupGid(group: string): number | null {
  if (/^\d+$/.test(group)) return Number(group);
  const line = run('getent', ['group', group]);
  const gid = line?.split(':')[2];
  return gid === undefined ? null : Number(gid);
}

/** A user name or numeric uid to a uid, or null when unknown. */
export function lookupUid(user: string): number | null {
  if (/^\d+$/.test(user)) return Number(user);
  const uid = run('id', ['-u', user]);
  return uid === null ? null : Number(uid);
}

function nameOf(kind: 'passwd' | 'group', id: number): string {
  return run('getent', [kind, String(id)])?.split(':')[0] ?? String(id);
}

function modeText(mode: number, socket: boolean): string {
  const bits = 'rwxrwxrwx';
  let s = socket ? 's' : 'd';
  for (let i = 0; i < 9; i++) s += mode & (1 << (8 - i)) ? bits[i] : '-';
  return s;
}

/** Which permission class applies to the user (the kernel picks the first that matches). */
function permissionClass(p: PathPlan, u: ProxyUser): { cls: 'owner' | 'group' | 'other'; shift: number } {
  if (p.uid === u.uid) return { cls: 'owner', shift: 6 };
  if (u.gids.includes(p.gid)) return { cls: 'group', shift: 3 };
  return { cls: 'other', shift: 0 };
}

/**
 * Checks every directory from / down to the socket's directory and the socket itself.
 * `plans` describes paths that do not exist yet (created by systemd or the server); a path
 * that exists is checked as it is on disk.
 */
export function checkProxyAccess(userName: string, socketPath: string, plans: Map<string, PathPlan> = new Map()): ProxyAccessReport {
  const user = lookupUser(userName);
  const lines: string[] = [];
  const fixes: string[] = [];
  const path = resolve(socketPath);
  if (!user) {
    return { ok: false, lines: [`user ${userName} does not exist on this machine`], fixes: [`Pass the user nginx's workers run as (the "user" directive in /etc/nginx/nginx.conf; www-data on Debian).`] };
  }
  lines.push(`can ${user.name} (uid ${user.uid}, groups ${user.groupNames.join(',')}) connect to ${path}?`);
  if (user.uid === 0) {
    lines.push('  ok   root bypasses file permissions');
    return { ok: true, lines, fixes };
  }
  const dirs: string[] = [];
  for (let d = dirname(path); ; d = dirname(d)) {
    dirs.unshift(d);
    if (d === dirname(d)) break;
  }
  let ok = true;
  const components = [...dirs.map((d) => ({ p: d, socket: false })), { p: path, socket: true }];
  for (const { p, socket } of components) {
    let info: PathPlan | undefined;
    let source = '';
    try {
      const st = statSync(p);
      info = { uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 };
    } catch {
      info = plans.get(p);
      source = info?.planned ? ` (not created yet; ${info.planned})` : '';
    }
    if (!info) {
      lines.push(`  ?    ${p}: does not exist yet; check again once the server runs`);
      continue;
    }
    const need = socket ? 2 : 1; // write on the socket, search on directories
    const { cls, shift } = permissionClass(info, user);
    const owner = `${nameOf('passwd', info.uid)}:${nameOf('group', info.gid)}`;
    const granted = ((info.mode >> shift) & need) !== 0;
    const what = socket ? 'connect (w)' : 'search (x)';
    lines.push(`  ${granted ? 'ok  ' : 'FAIL'} ${modeText(info.mode, socket)} ${owner.padEnd(20)} ${p}: ${what} as ${cls}${source}`);
    if (granted) continue;
    ok = false;
    const groupName = nameOf('group', info.gid);
    const bit = socket ? 'w' : 'x';
    if (cls === 'other' || cls === 'group') {
      if (socket) {
        fixes.push(
          `${p}: let ${user.name} in through the socket's group: run ws-proxy-kit with --socket-group ${user.groupNames[0] ?? user.name} (mode 0660), ` +
            `or add ${user.name} to ${groupName} (usermod -aG ${groupName} ${user.name}, then restart nginx so its workers pick up the group).`,
        );
      } else {
        fixes.push(
          `${p}: chmod o+x ${p} (search only, no listing), or chgrp ${user.groupNames[0] ?? user.name} ${p} && chmod g+x ${p}, ` +
            `or add ${user.name} to ${groupName} (usermod -aG ${groupName} ${user.name}, then restart nginx).`,
        );
      }
    } else {
      fixes.push(`${p}: chmod u+${bit} ${p}`);
    }
  }
  if (ok) lines.push(`  => ${user.name} can connect`);
  else lines.push(`  => ${user.name} cannot connect: nginx would log "connect() to unix:${path} failed (13: Permission denied)" and answer 502`);
  return { ok, lines, fixes };
}

/** Formats a report for the terminal. */
export function formatProxyAccess(r: ProxyAccessReport): string {
  return [...r.lines, ...r.fixes.map((f) => `  fix: ${f}`)].join('\n') + '\n';
}

/** The socket as ws-proxy-kit will create it (socketMode/socketUser/socketGroup), for when it does not exist yet. */
export function socketPlanFromSettings(socketPath: string, s: { socketMode: number; socketUser: string | null; socketGroup: string | null }): Map<string, PathPlan> {
  const uid = (s.socketUser ? lookupUid(s.socketUser) : null) ?? process.getuid?.() ?? 0;
  const gid = (s.socketGroup ? lookupGid(s.socketGroup) : null) ?? process.getgid?.() ?? 0;
  return new Map([[resolve(socketPath), { uid, gid, mode: s.socketMode, planned: 'ws-proxy-kit creates it with socketMode/socketGroup' }]]);
}
