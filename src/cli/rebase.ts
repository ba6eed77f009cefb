/**
 * `blockgraph rebase`: qemu-img rebase (qemu-img.c img_rebase).
 *   rebase [--object objectdef] [--image-opts] [-U] [-q] [-f fmt] [-p] [-u] -b backing_file
 *          [-F backing_fmt] filename
 * Safe mode: wherever the image does not allocate a range itself, the old backing chain and the
 * new backing file are compared 512 bytes at a time and the sectors that differ are written into
 * the image, so its content stays the same; then the header names the new backing file. Unsafe
 * mode (-u) only rewrites the header, without opening any backing file. `-b ""` removes the
 * backing file (safe mode compares with zeros).
 */
import { dirname, isAbsolute, join } from 'node:path';
import type { BlockBackend } from '../block/backend.ts';
import { errnoOf, STRERROR } from '../block/errors.ts';
import { setBackingFile } from '../drivers/format/qcow2/amend.ts';
import { BlockGraph } from '../graph/graph.ts';
import type { ObjectRegistry } from '../objects/registry.ts';
import { progressPrinter } from './convert-copy.ts';
import { parseImageArgs } from './img-args.ts';
import { openBackend, orCouldNotOpen, type ImageSpec } from './image-opts.ts';
import { CliExit, PROGRAM, runReporting, type CliIo } from './program.ts';

export const USAGE = `usage: ${PROGRAM} rebase [--object objectdef] [--image-opts] [-U] [-q] [-f fmt] [-p] [-u] -b backing_file [-F backing_fmt] filename\n`;

/** Bytes compared per step (img_rebase's IO_BUF_SIZE). */
const CHUNK = 2 << 20;
const SECTOR = 512;

export async function run(args: string[], io: CliIo): Promise<number> {
  return runReporting(io, async () => {
    const parsed = parseImageArgs(args, 'hf:F:b:upqt:T:', []);
    if (parsed.values('h').length > 0) {
      io.out(USAGE);
      return 0;
    }
    if (parsed.operands.length !== 1) throw new CliExit('Expecting one image file name', true);
    const unsafe = parsed.values('u').length > 0;
    const backing = parsed.values('b').at(-1);
    if (!unsafe && backing === undefined) {
      throw new CliExit('Must specify backing file (-b) or use unsafe mode (-u)', true);
    }
    const quiet = parsed.values('q').length > 0;
    await rebaseImage(
      { ...parsed.image, filename: parsed.operands[0] },
      backing ?? '',
      parsed.values('F').at(-1),
      {
        unsafe,
        objects: parsed.objects,
        progress: parsed.values('p').length > 0 && !quiet ? (t) => io.out(t) : undefined,
      },
    );
    return 0;
  });
}

async function rebaseImage(
  spec: ImageSpec,
  backing: string,
  format: string | undefined,
  opts: { unsafe: boolean; objects: ObjectRegistry; progress?: (text: string) => void },
): Promise<void> {
  const graph = new BlockGraph(undefined, opts.objects);
  const { blk } = await orCouldNotOpen(spec.filename, () =>
    openBackend(graph, { ...spec, noBacking: opts.unsafe }, ''),
  );
  const root = blk.root!;
  const driver = root.driver.name;
  const path = root.child('file')?.filename();
  try {
    if (!opts.unsafe) {
      const newBacking =
        backing === '' ? undefined : await openNewBacking(spec.filename, backing, format, opts.objects);
      try {
        await copyDifferences(blk, newBacking, opts.progress);
      } finally {
        await newBacking?.close();
      }
    }
  } finally {
    await blk.close();
  }
  const fail = (why: string) => new CliExit(`Could not change the backing file to '${backing}': ${why}`);
  if (driver !== 'qcow2' || path === undefined) throw fail(STRERROR.ENOTSUP);
  if (backing !== '' && format === undefined) throw fail('backing format must be specified');
  const files = new BlockGraph();
  const node = await files.open({ driver: 'file', filename: path });
  try {
    await setBackingFile(node, backing === '' ? undefined : backing, format);
  } finally {
    await files.release(node);
  }
}

/** The new backing file, named relative to the image as QEMU resolves it, opened read-only. */
async function openNewBacking(
  image: string,
  backing: string,
  format: string | undefined,
  objects: ObjectRegistry,
): Promise<BlockBackend> {
  const path = isAbsolute(backing) || !image.includes('/') ? backing : join(dirname(image), backing);
  try {
    const graph = new BlockGraph(undefined, objects);
    const { blk } = await openBackend(graph, { filename: path, format, readOnly: true }, '');
    return blk;
  } catch (err) {
    throw new CliExit(
      `Could not open new backing file '${path}': Could not open '${path}': ${(err as Error).message.replace(/^Could not open '[^']*': /, '')}`,
    );
  }
}

/**
 * img_rebase's loop: for each range the image does not allocate, reads the old view (the image
 * itself, which shows its old backing chain there) and the new backing file (zeros past its
 * end, or without one) and writes the sectors that differ into the image.
 */
async function copyDifferences(
  blk: BlockBackend,
  newBacking: BlockBackend | undefined,
  progress?: (text: string) => void,
): Promise<void> {
  const size = blk.length();
  const report = progressPrinter(size, progress);
  const old = new Uint8Array(CHUNK);
  const now = new Uint8Array(CHUNK);
  for (let offset = 0; offset < size;) {
    const status = await blk.root!.blockStatus(offset, Math.min(CHUNK, size - offset));
    const n = status.bytes;
    if (!(status.allocated && status.depth === 0)) {
      await blk.read(offset, old.subarray(0, n));
      await readOrZeros(newBacking, offset, now.subarray(0, n));
      await writeDifferences(blk, offset, old.subarray(0, n), now.subarray(0, n));
    }
    offset += n;
    report(offset);
  }
  report(size, true);
}

async function readOrZeros(blk: BlockBackend | undefined, offset: number, dst: Uint8Array): Promise<void> {
  dst.fill(0);
  const end = Math.min(blk?.length() ?? 0, offset + dst.length);
  if (blk && end > offset) await blk.read(offset, dst.subarray(0, end - offset));
}

/** Writes the runs of 512-byte sectors where `old` and `now` differ (compare_buffers). */
async function writeDifferences(
  blk: BlockBackend,
  offset: number,
  old: Uint8Array,
  now: Uint8Array,
): Promise<void> {
  const same = (at: number) => sectorEqual(old, now, at);
  for (let at = 0; at < old.length;) {
    const differ = !same(at);
    let end = at + SECTOR;
    while (end < old.length && !same(end) === differ) end += SECTOR;
    end = Math.min(end, old.length);
    if (differ) {
      const from = at;
      await blk.write(offset + from, old.subarray(from, end)).catch((err) => {
        throw new CliExit(`error while rebasing image: ${STRERROR[errnoOf(err)]}`);
      });
    }
    at = end;
  }
}

function sectorEqual(a: Uint8Array, b: Uint8Array, at: number): boolean {
  const end = Math.min(a.length, at + SECTOR);
  for (let i = at; i < end; i++) if (a[i] !== b[i]) return false;
  return true;
}
