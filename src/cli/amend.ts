/**
 * `blockgraph amend`: qemu-img amend (qemu-img.c img_amend, block/qcow2.c qcow2_amend_options).
 *   amend [--object objectdef] [--image-opts] [-p] [-q] [-f fmt] -o options filename
 * Implemented for qcow2: compat (0.10/v2 ↔ 1.1/v3), lazy_refcounts, size, and the options that
 * may be given with their current value (refcount_bits, backing_file, backing_fmt). The image is
 * opened read-write first — which repairs a dirty lazy-refcounts image, as QEMU's open does —
 * resized if asked, closed clean, and then its header is rewritten (qcow2/amend.ts).
 */
import { genericError, QmpError } from '../block/errors.ts';
import type { BlockNode } from '../block/node.ts';
import { amendHeader, type HeaderAmendment } from '../drivers/format/qcow2/amend.ts';
import { BlockGraph } from '../graph/graph.ts';
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
    await amendImage({ ...parsed.image, filename: parsed.operands[0] }, options);
    return 0;
  });
}

async function amendImage(spec: ImageSpec, options: string): Promise<void> {
  const graph = new BlockGraph();
  const { blk } = await orCouldNotOpen(spec.filename, () => openBackend(graph, spec, ''));
  const root = blk.root!;
  const path = root.filename();
  let change: HeaderAmendment;
  let zeroClusters = false;
  try {
    if (root.driver.name !== 'qcow2') {
      throw new CliExit(`Format driver '${root.driver.name}' does not support option amendment`);
    }
    const opts = amendOpts(options);
    const info = root.ops.info?.() ?? {};
    const facts = root.ops.imageFacts?.();
    const current = info.compat === '0.10' ? 2 : 3;
    change = headerChange(opts, current);
    checkUnchanged(opts, change.version ?? current, info, facts);
    const size = opts.get('size')?.value as number | undefined;
    if (size !== undefined && size !== root.length()) await root.truncate(size);
    if ((change.version ?? current) < current) zeroClusters = await hasZeroClusters(root);
  } finally {
    await blk.close();
  }
  const files = new BlockGraph();
  const file = await files.open({ driver: 'file', filename: path });
  try {
    await amendHeader(file, change, zeroClusters);
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

/** The options qcow2_amend_options accepts only with the image's current value. */
function checkUnchanged(
  opts: CreateOpts,
  version: number,
  info: Record<string, unknown>,
  facts: { backingFilename?: string; backingFormat?: string } | undefined,
): void {
  const bits = opts.get('refcount_bits')?.value as number | undefined;
  if (bits !== undefined && bits !== info['refcount-bits']) {
    if (version < 3 && bits !== 16) {
      throw new CliExit(
        'Refcount widths other than 16 bits require compatibility level 1.1 or above (use compat=1.1 or greater)',
      );
    }
    throw new CliExit(`Changing refcount_bits is not supported by ${PROGRAM} amend`);
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

/** Whether the image's own L2 tables hold zero clusters (which a downgrade must expand). */
async function hasZeroClusters(node: BlockNode): Promise<boolean> {
  const size = node.length();
  for (let offset = 0; offset < size;) {
    const s = await node.blockStatus(offset, size - offset);
    if (s.depth === 0 && s.allocated && s.zero && !s.data) return true;
    offset += s.bytes;
  }
  return false;
}
