/**
 * Helpers for the qcow2 write tests: images made by qemu-img, opened read-write through the
 * graph, a raw shadow copy of what the guest should see, and the verdicts of `qemu-img check`
 * and `qemu-img compare`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BlockNode } from '../../../../src/block/node.ts';
import { expect } from 'vitest';
import { BlockGraph } from '../../../../src/graph/graph.ts';

export class Scratch {
  readonly dir = mkdtempSync(join(tmpdir(), 'blockgraph-qcow2w-'));
  path(name: string): string {
    return join(this.dir, name);
  }
  run(tool: string, ...args: string[]): string {
    return execFileSync(tool, args, { cwd: this.dir, encoding: 'utf8' });
  }
  /** qemu-img create -f qcow2 with `opts`; returns the path. */
  create(name: string, size: number, opts = ''): string {
    this.run('qemu-img', 'create', '-q', '-f', 'qcow2', ...(opts ? ['-o', opts] : []), name, String(size));
    return this.path(name);
  }
  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface Opened {
  graph: BlockGraph;
  node: BlockNode;
  close(): Promise<void>;
}

/** Opens `path` read-write as a qcow2 node (extra options merged in). */
export async function openRw(path: string, extra: Record<string, unknown> = {}): Promise<Opened> {
  const graph = new BlockGraph();
  const node = await graph.open({ driver: 'qcow2', file: { driver: 'file', filename: path }, ...extra });
  return { graph, node, close: () => graph.release(node) };
}

/** `qemu-img check --output=json`: the parsed report (any exit code). */
export function qemuCheck(path: string): { corruptions: number; leaks: number; raw: string } {
  const r = spawnSync('qemu-img', ['check', '--output=json', path], { encoding: 'utf8' });
  const report = JSON.parse(r.stdout || '{}') as { corruptions?: number; leaks?: number };
  return { corruptions: report.corruptions ?? 0, leaks: report.leaks ?? 0, raw: r.stdout + r.stderr };
}

/** Asserts `qemu-img check` finds neither corruptions nor leaks in `path`. */
export function expectQemuClean(path: string): void {
  const c = qemuCheck(path);
  expect({ corruptions: c.corruptions, leaks: c.leaks }, c.raw).toEqual({ corruptions: 0, leaks: 0 });
  expect(c.raw).not.toMatch(/ERROR|Leaked/);
}

/** `qemu-img compare` of `path` against the raw `shadow`: its exit code (0 = identical). */
export function qemuCompare(scratch: Scratch, path: string, shadow: Uint8Array, name = 'shadow.raw'): string {
  writeFileSync(scratch.path(name), shadow);
  const r = spawnSync('qemu-img', ['compare', '-f', 'qcow2', '-F', 'raw', path, scratch.path(name)], {
    encoding: 'utf8',
  });
  return r.status === 0 ? 'identical' : r.stdout + r.stderr;
}

/** A deterministic PRNG (mulberry32) for reproducible workloads. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `len` bytes of a pattern derived from `seed` (never all zero). */
export function pattern(len: number, seed: number): Uint8Array {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = ((seed * 31 + i * 7) % 251) + 1;
  return b;
}
