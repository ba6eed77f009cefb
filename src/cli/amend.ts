/**
 * `blockgraph amend`: qemu-img amend (qemu-img.c img_amend, block/qcow2.c qcow2_amend_options).
 *   amend [--object objectdef] [--image-opts] [-p] [-q] [-f fmt] -o options filename
 * Implemented for qcow2: compat (0.10/v2 ↔ 1.1/v3, expanding zero clusters for v2),
 * lazy_refcounts, refcount_bits, size, and the options that may be given with their current
 * value (backing_file, backing_fmt). The image is opened read-write first — which repairs a
 * dirty lazy-refcounts image, as QEMU's open does — and closed clean before its refcount
 * structure and header are rewritten (qcow2/refcount-order.ts, qcow2/amend.ts).
 */
import { genericError, QmpError } from '../block/errors.ts';
import type { BlockNode } from '../block/node.ts';
import { qcow2Image } from '../drivers/format/qcow2.ts';
import { amendHeader, checkDowngrade, type HeaderAmendment } from '../drivers/format/qcow2/amend.ts';
import { expandZeroClusters } from '../drivers/format/qcow2/expand-zero.ts';
import { changeRefcountOrder } from '../drivers/format/qcow2/refcount-order.ts';
import { BlockGraph } from '../graph/graph.ts';
import type { ObjectRegistry } from '../objects/registry.ts';
import { mergedOpts, parseCreateOpts, type CreateOpts } from './create-opts.ts';
import { parseImageArgs } from './img-args.ts';
import { openBackend, orCouldNotOpen, type ImageSpec } from './image-opts.ts';
import { CliExit, PROGRAM, runReporting, type CliIo } from './program.ts';

export const USAGE = `usage: ${PROGRAM} amend [--object objectdef] [--image-opts] [-p] [-q] [-f fmt] -o options filename\n`;

/** qcow2's create options that qcow2_amend_opts leaves out (QEMU marks them creation-only). */
const CREATION_ONLY = ['cluster_size', 'preallocation', 'extended_l2', 'compression_type'];

export async function run(args: string[], io: CliIo): Promise<number> {
  return runReporting(io, async () => {
    const parsed = parseImageArgs(args, 'ho:f:t:pq', [{ name: 'force', hasArg: false }]);
    if (parsed.values('h').length > 0) {
      io.out(USAGE);
      return 0;
    }
    const options = parsed.values('o').join(',');
    if (!options) throw new CliExit('Must specify options (-o)', true);
    if (parsed.operands.length !== 1) throw new CliExit('Expecting one image file name');
    await amendImage({ ...parsed.image, filename: parsed.operands[0] }, options, parsed.objects);
    return 0;
  });
}

/** What the open image says is to be done, checked as qcow2_amend_options checks it. */
interface Amendment {
  readonly header: HeaderAmendment;
  /** The new refcount order, when refcount_bits changes. */
  readonly refcountOrder?: number;
  readonly downgrade: boolean;
}

/**
 * qcow2_amend_options' order: the image is opened (a dirty one repaired) to check the options
 * and resize it; then, on the closed image, an upgrade and a new refcount width; a downgrade
 * reopens it to expand its zero clusters; the header is rewritten last.
 */
async function amendImage(spec: ImageSpec, options: string, objects: ObjectRegistry): Promise<void> {
  let path = '';
  const amendment = await withImage<Amendment>(spec, objects, async (root) => {
    path = root.filename();
    if (root.driver.name !== 'qcow2') {
      throw new CliExit(`Format driver '${root.driver.name}' does not support option amendment`);
    }
    const opts = amendOpts(options);
    const info = root.ops.info?.() ?? {};
    const current = info.compat === '0.10' ? 2 : 3;
    const header = headerChange(opts, current);
    const version = header.version ?? current;
    checkUnchanged(opts, version, info, root.ops.imageFacts?.());
    const size = opts.get('size')?.value as number | undefined;
    if (size !== undefined && size !== root.length()) await root.truncate(size);
    const bits = opts.get('refcount_bits')?.value as number | undefined;
    const refcountOrder = bits !== undefined && bits !== info['refcount-bits'] ? Math.log2(bits) : undefined;
    return { header, refcountOrder, downgrade: version < current };
  });
  if (amendment.refcountOrder !== undefined) {
    await withFile(path, async (file) => {
      if (amendment.header.version === 3) await amendHeader(file, { version: 3 });
      await changeRefcountOrder(file, amendment.refcountOrder!);
    });
  }
  if (amendment.downgrade) {
    await withImage(spec, objects, async (root) => {
      // qcow2_downgrade refuses before it expands the zero clusters version 2 cannot express.
      await checkDowngrade(root.child('file')!);
      await expandZeroClusters(qcow2Image(root)!);
    });
  }
  await withFile(path, (file) => amendHeader(file, amendment.header));
}

/** Runs `op` on the image's root node, open read-write (with the --object objects), and closes it. */
async function withImage<T>(
  spec: ImageSpec,
  objects: ObjectRegistry,
  op: (root: BlockNode) => Promise<T>,
): Promise<T> {
  const { blk } = await orCouldNotOpen(spec.filename, () =>
    openBackend(new BlockGraph(undefined, objects), spec, ''),
  );
  try {
    return await op(blk.root!);
  } finally {
    await blk.close();
  }
}

/** Runs `op` on the image file itself (a protocol node). */
async function withFile(path: string, op: (file: BlockNode) => Promise<void>): Promise<void> {
  const files = new BlockGraph();
  const file = await files.open({ driver: 'file', filename: path });
  try {
    await op(file);
  } finally {
    await files.release(file);
  }
}

/** `-o` parsed against qcow2's options, with QEMU's hint for the creation-only ones. */
function amendOpts(text: string): CreateOpts {
  const opts: CreateOpts = new Map();
  try {
    parseCreateOpts(text, mergedOpts('qcow2'), opts);
  } catch (err) {
    if (err instanceof QmpError) throw new CliExit(err.message);
    throw err;
  }
  const creationOnly = [...opts.keys()].find((name) => CREATION_ONLY.includes(name));
  if (creationOnly !== undefined) {
    throw new CliExit(
      `Invalid parameter '${creationOnly}'\nThis option is only supported for image creation`,
    );
  }
  return opts;
}

/** compat and lazy_refcounts as the header change they ask for. */
function headerChange(opts: CreateOpts, current: 2 | 3): HeaderAmendment {
  const compat = opts.get('compat')?.str;
  let version: 2 | 3 | undefined;
  if (compat === '0.10' || compat === 'v2') version = 2;
  else if (compat === '1.1' || compat === 'v3') version = 3;
  else if (compat !== undefined) throw new CliExit(`Unknown compatibility level ${compat}`);
  const lazy = opts.get('lazy_refcounts')?.value as boolean | undefined;
  if (lazy && (version ?? current) < 3) {
    throw new CliExit(
      'Lazy refcounts only supported with compatibility level 1.1 and above (use compat=1.1 or greater)',
    );
  }
  return { version, lazyRefcounts: lazy };
}

/** refcount_bits' version rule, and the options qcow2_amend_options takes only unchanged. */
function checkUnchanged(
  opts: CreateOpts,
  version: number,
  info: Record<string, unknown>,
  facts: { backingFilename?: string; backingFormat?: string } | undefined,
): void {
  const bits = opts.get('refcount_bits')?.value as number | undefined;
  if (bits !== undefined && bits !== info['refcount-bits'] && version < 3 && bits !== 16) {
    throw new CliExit(
      'Refcount widths other than 16 bits require compatibility level 1.1 or above (use compat=1.1 or greater)',
    );
  }
  const file = opts.get('backing_file')?.str;
  const format = opts.get('backing_fmt')?.str;
  if (
    (file !== undefined || format !== undefined) &&
    (file !== facts?.backingFilename || format !== facts?.backingFormat)
  ) {
    throw new CliExit(`Cannot amend the backing file\nYou can use '${PROGRAM} rebase' instead.`);
  }
  for (const name of ['data_file', 'data_file_raw']) {
    if (opts.has(name)) throw genericError(`Amending ${name} is not supported by ${PROGRAM} amend`);
  }
}
