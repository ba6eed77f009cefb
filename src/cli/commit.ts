/**
 * `blockgraph commit`: qemu-img commit (qemu-img.c img_commit, block/commit.c).
 *   commit [--object objectdef] [--image-opts] [-q] [-f fmt] [-b base] [-d] [-p] filename
 * Everything the layers above `base` (default: the image's backing file) allocate is copied into
 * `base`: data as data, zero ranges as write-zeroes; a smaller base is grown first. Then, unless
 * -d (implied by -b, as in qemu-img), the image is emptied as qcow2_make_empty does: recreated
 * with the same creation parameters and backing file, so it holds no clusters.
 */
import { resolve } from 'node:path';
import type { BlockBackend } from '../block/backend.ts';
import { errnoOf, STRERROR } from '../block/errors.ts';
import type { BlockNode } from '../block/node.ts';
import { BlockGraph } from '../graph/graph.ts';
import type { ObjectRegistry } from '../objects/registry.ts';
import { creationPath } from './create-image.ts';
import { createWithOpts } from './create.ts';
import type { CreateOpts } from './create-opts.ts';
import { progressPrinter } from './convert-copy.ts';
import { parseImageArgs } from './img-args.ts';
import { openBackend, orCouldNotOpen, type ImageSpec } from './image-opts.ts';
import { CliExit, PROGRAM, runReporting, type CliIo } from './program.ts';

export const USAGE = `usage: ${PROGRAM} commit [--object objectdef] [--image-opts] [-q] [-f fmt] [-b base] [-d] [-p] filename\n`;

/** Bytes per copy step (block/commit.c COMMIT_BUFFER_SIZE). */
const CHUNK = 512 * 1024;

export async function run(args: string[], io: CliIo): Promise<number> {
  return runReporting(io, async () => {
    const parsed = parseImageArgs(args, 'f:hb:dpq', []);
    if (parsed.values('h').length > 0) {
      io.out(USAGE);
      return 0;
    }
    if (parsed.operands.length !== 1) throw new CliExit('Expecting one image file name', true);
    const quiet = parsed.values('q').length > 0;
    const base = parsed.values('b').at(-1);
    await commitImage({ ...parsed.image, filename: parsed.operands[0] }, base, {
      drop: parsed.values('d').length > 0 || base !== undefined,
      objects: parsed.objects,
      progress: parsed.values('p').length > 0 && !quiet ? (t) => io.out(t) : undefined,
    });
    if (!quiet) io.out('Image committed.\n');
    return 0;
  });
}

/** The image's backing chain below it, top first. */
function backingChain(node: BlockNode): BlockNode[] {
  const chain: BlockNode[] = [];
  for (let n = node.child('backing'); n; n = n.child('backing')) chain.push(n);
  return chain;
}

/**
 * Commits the image `spec` into `baseName` (or its backing file), then empties it unless `drop`.
 * Throws qemu-img's errors.
 */
async function commitImage(
  spec: ImageSpec,
  baseName: string | undefined,
  opts: { drop: boolean; objects: ObjectRegistry; progress?: (text: string) => void },
): Promise<void> {
  const graph = new BlockGraph(undefined, opts.objects);
  const { blk } = await orCouldNotOpen(spec.filename, () => openBackend(graph, spec, ''));
  let recreate: (() => Promise<void>) | undefined;
  try {
    const top = blk.root!;
    const chain = backingChain(top);
    if (chain.length === 0) throw new CliExit('Image does not have a backing file');
    const depth =
      baseName === undefined ? 0 : chain.findIndex((n) => resolve(n.filename()) === resolve(baseName));
    if (depth < 0) throw new CliExit(`Did not find '${baseName}' in the backing chain of '${spec.filename}'`);
    if (!opts.drop) recreate = emptier(spec, top);
    const base = chain[depth];
    const target = await orCouldNotOpen(base.filename(), () =>
      openBackend(
        new BlockGraph(undefined, opts.objects),
        { filename: base.filename(), format: base.driver.name },
        '',
      ),
    );
    // Past the end of a layer's backing file the layer reads zeros: QEMU counts those ranges as
    // allocated (bdrv_co_block_status_above) and commits them as zeros. The base itself is grown
    // to the top's size first, so only the layers between them count.
    const zeroFrom = Math.min(...chain.slice(0, depth).map((n) => n.length()));
    try {
      await copyAbove(blk, target.blk, { baseDepth: depth + 1, zeroFrom }, opts.progress);
    } finally {
      await target.blk.close();
    }
  } finally {
    await blk.close();
  }
  await recreate?.();
}

/**
 * Copies what the layers of `top` above depth `baseDepth` allocate into `base` (commit_run:
 * is_allocated_above, then read and write), and writes zeros from `zeroFrom` on where no layer
 * allocates anything; `base` is grown to `top`'s size first.
 */
async function copyAbove(
  top: BlockBackend,
  base: BlockBackend,
  where: { baseDepth: number; zeroFrom: number },
  progress?: (text: string) => void,
): Promise<void> {
  const size = top.length();
  if (base.length() < size) await base.root!.truncate(size);
  const report = progressPrinter(size, progress);
  const buffer = new Uint8Array(CHUNK);
  for (let offset = 0; offset < size;) {
    const limit = offset < where.zeroFrom ? where.zeroFrom : size;
    const status = await top.root!.blockStatus(offset, Math.min(CHUNK, limit - offset));
    const at = offset;
    const bytes = status.bytes;
    const above = status.allocated && status.depth < where.baseDepth;
    if ((above && status.zero && !status.data) || (!above && offset >= where.zeroFrom)) {
      await orWriteError(() => base.writeZeroes(at, bytes, { unmap: true }));
    } else if (above) {
      const data = buffer.subarray(0, bytes);
      await top.read(at, data);
      await orWriteError(() => base.write(at, data));
    }
    offset += bytes;
    report(offset);
  }
  report(size, true);
}

async function orWriteError(op: () => Promise<void>): Promise<void> {
  try {
    await op();
  } catch (err) {
    throw new CliExit(`Block job failed: ${STRERROR[errnoOf(err)]}`);
  }
}

/**
 * qcow2_make_empty for `top` (a plain qcow2 file): what recreates the image with its creation
 * parameters and backing file, so it allocates nothing. Checked before the commit starts:
 * images whose emptying would lose more than allocations (snapshots, bitmaps, a data file) are
 * refused, as are other formats.
 */
function emptier(spec: ImageSpec, top: BlockNode): () => Promise<void> {
  const facts = top.ops.imageFacts?.();
  const info = top.ops.info?.() ?? {};
  const unsupported = (why: string) =>
    new CliExit(`Emptying ${why} is not supported by ${PROGRAM} commit; use -d to keep the image as it is`);
  if (top.driver.name !== 'qcow2' || spec.imageOpts || spec.filename.startsWith('json:')) {
    throw unsupported(`a ${top.driver.name} image given as ${spec.imageOpts ? 'options' : 'a filename'}`);
  }
  if ((facts?.snapshots?.length ?? 0) > 0) throw unsupported('an image with internal snapshots');
  if (info.bitmaps !== undefined || info['data-file'] !== undefined) {
    throw unsupported('an image with bitmaps or a data file');
  }
  const path = creationPath('qcow2', spec.filename);
  const opts: CreateOpts = new Map();
  const set = (name: string, value: string | number | boolean | undefined) => {
    if (value !== undefined)
      opts.set(name, { str: String(value === true ? 'on' : value === false ? 'off' : value), value });
  };
  set('size', top.length());
  set('cluster_size', facts?.clusterSize);
  set('compat', info.compat as string);
  set('lazy_refcounts', info['lazy-refcounts'] as boolean | undefined);
  set('refcount_bits', info['refcount-bits'] as number);
  set('extended_l2', info['extended-l2'] as boolean | undefined);
  // zlib is the default, and the only type a version 2 image may name.
  if (info['compression-type'] !== 'zlib') set('compression_type', info['compression-type'] as string);
  set('backing_file', facts?.backingFilename);
  set('backing_fmt', facts?.backingFormat);
  return () => createWithOpts(path, 'qcow2', opts);
}
