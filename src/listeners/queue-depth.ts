// How many connections wait in each bind's listen queue: the first sign that the pool is too
// small (every worker busy, or none accepting), read from the kernel.
//  - TCP: the LISTEN rows of /proc/net/tcp{,6}: rx_queue is the accept queue's length now,
//    tx_queue its maximum (--backlog capped by net.core.somaxconn).
//  - UNIX: the kernel gives it only through sock_diag netlink (UNIX_DIAG_RQLEN), which Node
//    cannot open; `ss -xln` (iproute2) reads it there: Recv-Q is the queue, Send-Q its
//    maximum. Without ss, a UNIX bind's depth is unknown (null).
// Sockets are matched by inode (readlink /proc/self/fd/N): other processes' sockets never count.
import { execFile } from 'node:child_process';
import { readFileSync, readlinkSync } from 'node:fs';

/** A listening socket of ours (Listener fits). */
export interface QueuedListener {
  readonly fd: number;
  readonly address: string;
}

export interface QueueDepth {
  address: string;
  /** Connections waiting to be accepted; null when this system does not say. */
  queued: number | null;
  /** The queue's maximum; null when unknown. */
  max: number | null;
}

function inodeOf(fd: number): string | null {
  try {
    return /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`))?.[1] ?? null;
  } catch {
    return null; // not Linux, or the fd is closed
  }
}

function tcpQueues(byInode: Map<string, string>, out: Map<string, QueueDepth>): void {
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'latin1');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== '0A') continue; // 0A = LISTEN
      const address = byInode.get(f[9]!);
      if (address === undefined) continue;
      const [tx, rx] = f[4]!.split(':');
      out.set(f[9]!, { address, queued: parseInt(rx!, 16), max: parseInt(tx!, 16) });
    }
  }
}

function unixQueues(byInode: Map<string, string>, out: Map<string, QueueDepth>): Promise<void> {
  return new Promise((resolve) => {
    execFile('ss', ['-xlnH'], { timeout: 2000, encoding: 'utf8' }, (err, stdout) => {
      if (!err) {
        for (const line of stdout.split('\n')) {
          const f = line.trim().split(/\s+/); // Netid State Recv-Q Send-Q Path Inode Peer PeerInode
          const address = byInode.get(f[5] ?? '');
          if (address !== undefined && f[1] === 'LISTEN') out.set(f[5]!, { address, queued: Number(f[2]), max: Number(f[3]) });
        }
      }
      resolve();
    });
  });
}

/** The queue of each listener, in their order. */
export async function readQueueDepths(listeners: readonly QueuedListener[]): Promise<QueueDepth[]> {
  const byInode = new Map<string, string>();
  const inodes = listeners.map((l) => inodeOf(l.fd));
  listeners.forEach((l, i) => inodes[i] !== null && byInode.set(inodes[i]!, l.address));
  const found = new Map<string, QueueDepth>();
  tcpQueues(byInode, found);
  if ([...byInode.keys()].some((inode) => !found.has(inode))) await unixQueues(byInode, found);
  return listeners.map((l, i) => found.get(inodes[i] ?? '') ?? { address: l.address, queued: null, max: null });
}
