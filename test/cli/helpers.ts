/**
 * Running our commands in-process next to the real qemu-img / qemu-io on the same files, and
 * normalizing only what cannot match: the program name and qemu-io's timing numbers.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CliIo, CommandRun } from '../../src/cli/program.ts';

export interface Outcome {
  stdout: string;
  stderr: string;
  status: number;
}

/** Runs one of our commands in-process, capturing what it prints. */
export async function runOurs(run: CommandRun, args: string[], cwd?: string): Promise<Outcome> {
  let stdout = '';
  let stderr = '';
  const io: CliIo = { out: (t) => void (stdout += t), err: (t) => void (stderr += t) };
  const before = process.cwd();
  if (cwd) process.chdir(cwd);
  try {
    const status = await run(args, io);
    return { stdout, stderr, status };
  } finally {
    process.chdir(before);
  }
}

/** Runs a QEMU tool (or our bin) as a process. */
export function runTool(cmd: string, args: string[], cwd?: string): Outcome {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8' });
  return { stdout: r.stdout, stderr: r.stderr, status: r.status ?? -1 };
}

// qemu-io's statistics line; the size and op count must match, the time and rates cannot.
const TIMING =
  /(\d+ ops; )(?:\d+:\d\d:\d\d\.\d\d|\d\d\.\d\d sec) \((?:[\d.]+|inf) (?:bytes|KiB|MiB|GiB|TiB|PiB|EiB)\/sec and (?:[\d.]+|inf) ops\/sec\)/g;
const MACHINE = /^(\d+),(\d+),\d+:\d\d:\d\d\.\d\d,[\d.]+,[\d.]+$/gm;

/** Replaces the program name and timing numbers so outputs of QEMU and ours compare equal. */
export function normalize(text: string): string {
  return text
    .replace(/^qemu-(?:img|io): /gm, 'blockgraph: ')
    .replace(/Try 'qemu-img --help'/g, "Try 'blockgraph --help'")
    .replace(TIMING, '$1TIME')
    .replace(MACHINE, '$1,$2,TIME');
}

export function normalized(o: Outcome): Outcome {
  return { stdout: normalize(o.stdout), stderr: normalize(o.stderr), status: o.status };
}

/** A fresh temporary directory, removed by the returned cleanup. */
export function tempDir(): { dir: string; path: (name: string) => string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'blockgraph-cli-'));
  return {
    dir,
    path: (name) => join(dir, name),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** A runner for set-up steps in `dir`: runs a tool, fails the test with its stderr, returns stdout. */
export function mustRunIn(dir: string): (cmd: string, args: string[]) => string {
  return (cmd, args) => {
    const r = runTool(cmd, args, dir);
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
}
