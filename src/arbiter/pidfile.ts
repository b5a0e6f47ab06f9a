// The pidfile (--pid), as Gunicorn's pidfile.py: written at start unless it names another
// running server, renamed to PIDFILE.oldbin during a USR2 upgrade (and back if the new
// master fails), removed at exit if it is still ours. `ctl --pid FILE` reads it too.
import { readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';

export class Pidfile {
  private constructor(
    /** Where the settings put it. */
    private readonly home: string,
    /** Where it is now: home, or home.oldbin during an upgrade. */
    private path: string,
  ) {}

  /** Writes our pid to `file`; refuses (exit 1) when it names another running process. */
  static create(file: string): Pidfile {
    const path = resolve(file);
    let other: number | null = null;
    try {
      other = readPid(path);
    } catch {
      // unreadable: writing it says what is wrong
    }
    if (other !== null && other !== process.pid && isRunning(other)) {
      throw Object.assign(new Error(`The pidfile ${path} names process ${other}, which is running. Is another server using it?`), {
        exitCode: 1,
      });
    }
    writeFileSync(path, `${process.pid}\n`);
    return new Pidfile(path, path);
  }

  /** USR2: PIDFILE becomes PIDFILE.oldbin, so the new master can write PIDFILE. */
  moveAsideForUpgrade(): void {
    const oldbin = `${this.home}.oldbin`;
    renameSync(this.path, oldbin);
    this.path = oldbin;
  }

  /** The new master exited before serving: PIDFILE.oldbin becomes PIDFILE again. */
  restore(): void {
    if (this.path === this.home) return;
    renameSync(this.path, this.home);
    this.path = this.home;
  }

  /** At exit: removed only if it still names us (a new master may have written its own). */
  remove(): void {
    try {
      if (readPid(this.path) === process.pid) unlinkSync(this.path);
    } catch {
      // already gone
    }
  }
}

/** The pid a pidfile names; null when the file is missing or holds no pid. */
export function readPid(path: string): number | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  const pid = Number(text.trim());
  return Number.isInteger(pid) && pid > 0 ? pid : null;
}

/** The process exists (signal 0 checks without sending; EPERM: it runs as another user). */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  return true;
}
