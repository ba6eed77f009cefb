/** Real graphs for the BlockBackend tests: raw over blkdebug over memory. */
import { BlockBackend, type BackendOptions } from '../../src/block/backend.ts';
import type { BlockNode } from '../../src/block/node.ts';
import { BlockGraph } from '../../src/graph/graph.ts';

export const MiB = 1 << 20;

export interface Rig {
  graph: BlockGraph;
  events: { event: string; data: Record<string, unknown> }[];
  /** The root: raw 'r0'. */
  root: BlockNode;
  /** The blkdebug node under it ('dbg'). */
  dbg: BlockNode;
  blk: BlockBackend;
}

export interface RigOptions {
  size?: number;
  align?: number;
  injectError?: Record<string, unknown>[];
  backend?: BackendOptions;
  readOnlyNode?: boolean;
}

export async function rig(o: RigOptions = {}): Promise<Rig> {
  const events: Rig['events'] = [];
  const graph = new BlockGraph((event, data) => events.push({ event, data }));
  const root = await graph.blockdevAdd({
    driver: 'raw',
    'node-name': 'r0',
    'read-only': o.readOnlyNode ?? false,
    file: {
      driver: 'blkdebug',
      'node-name': 'dbg',
      ...(o.align ? { align: o.align } : {}),
      ...(o.injectError ? { 'inject-error': o.injectError } : {}),
      image: { driver: 'memory', size: o.size ?? MiB },
    },
  });
  const blk = new BlockBackend(graph, 'd0', o.backend);
  blk.insert(root);
  return { graph, events, root, dbg: root.child('file')!, blk };
}

/** A deterministic pseudo-random generator (mulberry32), so failures reproduce. */
export function prng(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) / 4294967296) * n;
  };
}

export function pattern(len: number, seed: number): Uint8Array {
  const buf = new Uint8Array(len);
  for (let i = 0; i < len; i++) buf[i] = (seed * 31 + i * 7) & 0xff || 1;
  return buf;
}

/** Lets pending promise callbacks and timers run. */
export const settle = () => new Promise((resolve) => setTimeout(resolve, 5));

/** The first index where `a` and `b` differ, or -1; much faster than a deep toEqual on bytes. */
export function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return -1;
}
