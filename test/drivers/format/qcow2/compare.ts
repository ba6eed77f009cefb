/**
 * Reading an image through blockgraph and comparing it with what QEMU made of the same file:
 * `qemu-img convert -O raw` output compared chunk by chunk, with the first differing byte
 * reported precisely, and QEMU's verdict on a (possibly hostile) image.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import type { BlockNode } from '../../../../src/block/node.ts';
import { BlockGraph } from '../../../../src/graph/graph.ts';

const CHUNK = 1 << 20;

/** An open image and how to close it with its whole chain. */
export interface Opened {
  readonly node: BlockNode;
  close(): Promise<void>;
}

/** Opens `path` as qcow2 over a file node, read-only, as qemu-img convert does. */
export async function openQcow2(path: string, extra: Record<string, unknown> = {}): Promise<Opened> {
  const graph = new BlockGraph();
  const node = await graph.open({
    driver: 'qcow2',
    file: { driver: 'file', filename: path },
    'read-only': true,
    ...extra,
  });
  return { node, close: () => graph.release(node) };
}

/**
 * Compares the guest view of `node` with the raw file `raw` over `ranges` (default: all of it),
 * 1 MiB at a time. Returns undefined when equal, else where and how they first differ.
 */
export async function firstDifference(
  node: BlockNode,
  raw: string,
  ranges: readonly (readonly [number, number])[] = [[0, node.length()]],
): Promise<string | undefined> {
  const fd = openSync(raw, 'r');
  const ours = new Uint8Array(CHUNK);
  const theirs = new Uint8Array(CHUNK);
  try {
    for (const [start, length] of ranges) {
      for (let at = start; at < start + length; at += CHUNK) {
        const n = Math.min(CHUNK, start + length - at);
        await node.read(at, ours.subarray(0, n));
        theirs.fill(0);
        readSync(fd, theirs, 0, n, at);
        const i = ours.subarray(0, n).findIndex((b, k) => b !== theirs[k]);
        if (i >= 0) {
          const hex = (a: Uint8Array) => Buffer.from(a.subarray(i, i + 8)).toString('hex');
          return `first difference at guest offset ${at + i}: ours ${hex(ours)}, qemu ${hex(theirs)}`;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
  return undefined;
}

/** What QEMU does with an image when converting it to raw (opening its backing chain too). */
export type QemuVerdict =
  | { kind: 'open'; message: string }
  | { kind: 'read'; stderr: string; corruption?: string }
  | { kind: 'same'; raw: string };

/**
 * Runs `qemu-img convert -f qcow2 -O raw path path.raw` in the image's directory and classifies
 * the outcome: refused at open (with the message after "Could not open 'path': "), failed while
 * reading (with qcow2's corruption event text, if any), or converted (to `path.raw`).
 */
export function qemuVerdict(path: string): QemuVerdict {
  const raw = `${path}.raw`;
  rmSync(raw, { force: true });
  const r = spawnSync('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', path, raw], {
    cwd: dirname(path),
    encoding: 'utf8',
  });
  if (r.status === 0) return { kind: 'same', raw };
  const open = /^qemu-img: Could not open '[^']*': (.*)$/m.exec(r.stderr);
  if (open) return { kind: 'open', message: open[1]! };
  const corruption = /^qcow2: (?:Image is corrupt|Marking image as corrupt): (.*); further/m.exec(r.stderr);
  return { kind: 'read', stderr: r.stderr, corruption: corruption?.[1] };
}

/** How blockgraph fared on the same image: the open error, the read error, or the open node. */
export type OurVerdict =
  { kind: 'open'; error: unknown } | { kind: 'read'; error: unknown } | { kind: 'same'; difference?: string };

export async function ourVerdict(path: string, raw?: string): Promise<OurVerdict> {
  let image: Opened;
  try {
    image = await openQcow2(path);
  } catch (error) {
    return { kind: 'open', error };
  }
  const { node } = image;
  try {
    if (raw) return { kind: 'same', difference: await firstDifference(node, raw) };
    const buf = new Uint8Array(CHUNK);
    for (let at = 0; at < node.length(); at += CHUNK)
      await node.read(at, buf.subarray(0, Math.min(CHUNK, node.length() - at)));
    return { kind: 'same' };
  } catch (error) {
    return { kind: 'read', error };
  } finally {
    await image.close();
  }
}
