/**
 * Test helpers around the real qemu-nbd (Debian qemu-utils): a server on a Unix socket in a
 * temporary directory (no port clashes between parallel runs), started with --fork so it is
 * listening when start() returns, and stopped by its pid.
 */
import { execFile, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);

export class QemuNbd {
  private pid = 0;

  constructor(
    readonly socket: string,
    private readonly args: readonly string[],
  ) {}

  /** Starts qemu-nbd -t -k SOCKET ARGS...; resolves once it listens. */
  async start(): Promise<this> {
    const pidFile = `${this.socket}.pid`;
    await run('qemu-nbd', ['--fork', `--pid-file=${pidFile}`, '-t', '-k', this.socket, ...this.args]);
    this.pid = Number(readFileSync(pidFile, 'utf8'));
    return this;
  }

  /** Kills the server (SIGKILL: connections drop without a goodbye) and waits for it to go. */
  async kill(): Promise<void> {
    if (!this.pid) return;
    try {
      process.kill(this.pid, 'SIGKILL');
    } catch {
      return;
    }
    while (alive(this.pid)) await new Promise((r) => setTimeout(r, 10));
    this.pid = 0;
  }

  /** The URI of export `name` (qemu-nbd's default export name is ''). */
  uri(name = ''): string {
    return `nbd+unix:///${name}?socket=${this.socket}`;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Runs a QEMU tool synchronously; throws with its stderr if it fails. */
export function qemu(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** Runs a QEMU tool without blocking the event loop (for when our server must answer it). */
export async function qemuAsync(
  cmd: string,
  args: string[],
): Promise<{ stdout: string; stderr: string; status: number }> {
  try {
    const { stdout, stderr } = await run(cmd, args, { encoding: 'utf8' });
    return { stdout, stderr, status: 0 };
  } catch (err) {
    const e = err as { stdout: string; stderr: string; code: number };
    return { stdout: e.stdout, stderr: e.stderr, status: e.code };
  }
}

/** One entry of `qemu-img map --output=json`. */
export interface MapEntry {
  start: number;
  length: number;
  data: boolean;
  zero: boolean;
}

/** Merges adjacent entries with equal data/zero, so maps from different sources compare. */
export function mergeMap(entries: readonly MapEntry[]): MapEntry[] {
  const out: MapEntry[] = [];
  for (const e of entries) {
    const last = out.at(-1);
    if (last && last.data === e.data && last.zero === e.zero && last.start + last.length === e.start) {
      last.length += e.length;
    } else out.push({ start: e.start, length: e.length, data: e.data, zero: e.zero });
  }
  return out;
}

export function qemuImgMap(args: string[]): MapEntry[] {
  return mergeMap(JSON.parse(qemu('qemu-img', ['map', '--output=json', ...args])) as MapEntry[]);
}
