/**
 * What the conformance suites need from their runner, and their own assertions. No Node and no
 * vitest imports: the same suite code runs under vitest here and inside a browser Worker
 * (e2e/conformance.spec.ts), where a small runner provides `describe`/`it` (vitest's own
 * functions satisfy Harness as is).
 */
import { BlockIOError, type Errno } from '../../src/block/errors.ts';
import type { DriverCapabilities } from '../../src/block/types.ts';
import { BlockGraph } from '../../src/graph/graph.ts';
import { createObject } from '../../src/objects/create.ts';
import type { BlockNode } from '../../src/block/node.ts';

export interface Harness {
  describe(name: string, body: () => void): void;
  it(name: string, body: () => Promise<void>): void;
}

/** What one table row can do; the suites choose their cases from it. */
export interface SuiteCaps extends Pick<DriverCapabilities, 'writable' | 'persistent' | 'growable'> {
  /** Discarded ranges read as zeros (otherwise their contents are unspecified after discard). */
  readonly discardZeroes: boolean;
  /** Huge images cost nothing until written: offsets above 2^32 and 2^40 are exercised. */
  readonly sparse: boolean;
  /**
   * The driver refuses to open read-write (QEMU's "... does not support writes": http, blob): the
   * row's options open it read-only, and every write fails with EPERM instead of being dropped.
   */
  readonly readOnly?: boolean;
  /** The errno of a write past the end of a non-growable image; EIO if not given. */
  readonly beyondEndErrno?: Errno;
  /**
   * Opening read-only is refused with QEMU's "Block node is read-only": copy-on-read must be able
   * to write its file, as in QEMU.
   */
  readonly readOnlyRefused?: boolean;
}

/** A fresh image made for one case. */
export interface TestImage {
  /** blockdev-add options opening the image; opening them again sees the same image. */
  readonly options: Record<string, unknown>;
  /** Objects the options name (object-add arguments: a throttle row's group), made per graph. */
  readonly objects?: readonly Record<string, unknown>[];
  /** Frees what was made for it (temp files, named stores). */
  destroy(): Promise<void>;
}

export interface SuiteEntry {
  readonly name: string;
  readonly caps: SuiteCaps;
  /** Makes a zero-filled image of `size` bytes. */
  create(size: number): Promise<TestImage>;
}

export class AssertionError extends Error {
  override name = 'AssertionError';
}

export function check(condition: boolean, message: string): asserts condition {
  if (!condition) throw new AssertionError(message);
}

/** Throws naming the first differing byte. */
export function checkBytes(actual: Uint8Array, expected: Uint8Array, where: string): void {
  check(actual.length === expected.length, `${where}: length ${actual.length} != ${expected.length}`);
  for (let i = 0; i < actual.length; i++) {
    if (actual[i] !== expected[i]) {
      throw new AssertionError(`${where}: byte ${i} is ${actual[i]}, expected ${expected[i]}`);
    }
  }
}

/** Awaits `p` and checks that it failed with a BlockIOError of `errno`. */
export async function checkIOError(p: Promise<unknown>, errno: Errno, what: string): Promise<void> {
  try {
    await p;
  } catch (err) {
    check(err instanceof BlockIOError, `${what}: threw ${String(err)}, not a BlockIOError`);
    check(err.errno === errno, `${what}: errno ${err.errno}, expected ${errno}`);
    return;
  }
  throw new AssertionError(`${what}: succeeded, expected ${errno}`);
}

/** mulberry32: a small seeded PRNG, so every run (and every failure) is reproducible. */
export function prng(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

export function randomBytes(rand: (n: number) => number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = rand(256);
  return out;
}

/** A fresh BlockGraph holding the objects `image` needs. */
export function graphFor(image: Omit<TestImage, 'destroy'>): BlockGraph {
  const graph = new BlockGraph();
  for (const props of image.objects ?? []) createObject(graph.objects, props, { source: 'qmp' });
  return graph;
}

/** One image opened through a fresh BlockGraph, as node 'img'. */
export class Opened {
  private constructor(
    readonly graph: BlockGraph,
    readonly node: BlockNode,
  ) {}

  static async open(image: Omit<TestImage, 'destroy'>, extra: Record<string, unknown> = {}): Promise<Opened> {
    const graph = graphFor(image);
    const node = await graph.blockdevAdd({ ...image.options, ...extra, 'node-name': 'img' });
    return new Opened(graph, node);
  }

  async read(offset: number, bytes: number): Promise<Uint8Array> {
    const buf = new Uint8Array(bytes);
    await this.node.read(offset, buf);
    return buf;
  }

  async close(): Promise<void> {
    await this.graph.blockdevDel('img');
  }
}

/** Runs `body` on a fresh image, opened; closes and destroys it afterwards. */
export async function withImage(
  entry: SuiteEntry,
  size: number,
  body: (img: Opened, image: TestImage) => Promise<void>,
): Promise<void> {
  const image = await entry.create(size);
  try {
    const img = await Opened.open(image);
    try {
      await body(img, image);
    } finally {
      if (img.graph.nodes.has('img')) await img.close();
    }
  } finally {
    await image.destroy();
  }
}
