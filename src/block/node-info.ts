/**
 * A node as QMP describes it: QAPI BlockDeviceInfo (query-named-block-nodes, and the `inserted`
 * member of query-block) with its ImageInfo (block/qapi.c: bdrv_block_device_info,
 * bdrv_query_image_info). Members appear in QAPI schema order; optional ones only when known.
 */
import type { ImageFacts } from './driver.ts';
import type { BlockNode } from './node.ts';

/** The node's backing child, if any. */
function backingOf(node: BlockNode): BlockNode | undefined {
  return node.childList.find((c) => c.role === 'backing')?.node;
}

/** Roles of the child a filter passes requests to (BDRV_CHILD_FILTERED), not its targets. */
const FILTERED_ROLES: ReadonlySet<string> = new Set(['file', 'image', 'test']);

/**
 * bdrv_filter_or_cow_bs: the node's backing child, or a filter's filtered child. QEMU 7.2 walks
 * these links for the `backing-image` chain and backing_file_depth (measured: a throttle over
 * null-co reports the null-co node as its backing-image, depth 1).
 */
function filterOrCow(node: BlockNode): BlockNode | undefined {
  const backing = backingOf(node);
  if (backing || node.driver.kind !== 'filter') return backing;
  return node.childList.find((c) => FILTERED_ROLES.has(c.role))?.node;
}

/** Raw and filters forward to their data child; QEMU asks it what it cannot answer itself. */
function forwardsTo(node: BlockNode): BlockNode | undefined {
  if (node.driver.kind !== 'filter' && node.driver.name !== 'raw') return undefined;
  return node.childList.find((c) => c.role !== 'backing')?.node;
}

/** bdrv_get_info: the driver's own facts, or for raw/filters those of the node below. */
function facts(node: BlockNode): ImageFacts | undefined {
  if (node.ops.imageFacts) return node.ops.imageFacts();
  const below = forwardsTo(node);
  return below && facts(below);
}

/**
 * bdrv_get_allocated_file_size: the driver's answer; else none for a driver with a protocol
 * prefix (blkdebug:, blkverify:); else a filter's (or raw's) child's; else, for formats, their
 * file's; protocols without an answer have none.
 */
function actualSize(node: BlockNode): number | undefined {
  const own = node.ops.imageFacts?.().actualSize;
  if (own !== undefined) return own;
  if (node.driver.protocols?.length) return undefined;
  const below = forwardsTo(node);
  if (below) return actualSize(below);
  if (node.driver.kind !== 'format') return undefined;
  // QEMU 7.2 counts the image file only: a qcow2 external data file is not included (measured).
  const file = node.primaryChild();
  return file && actualSize(file);
}

function backingDepth(node: BlockNode): number {
  let depth = 0;
  for (let b = filterOrCow(node); b; b = filterOrCow(b)) depth++;
  return depth;
}

/**
 * QAPI ImageInfo of `node` (bdrv_query_image_info, as qemu-img info shows it); with `chain`,
 * the nodes below it (backing or filtered child) nest as `backing-image`, as
 * bdrv_block_device_info builds it for the QMP queries.
 */
export function imageInfo(node: BlockNode, chain = false): Record<string, unknown> {
  const f = facts(node);
  const info: Record<string, unknown> = { filename: node.filename(), format: node.driver.name };
  if (f?.dirty !== undefined) info['dirty-flag'] = f.dirty;
  const actual = actualSize(node);
  if (actual !== undefined) info['actual-size'] = actual;
  info['virtual-size'] = node.length();
  if (f?.clusterSize) info['cluster-size'] = f.clusterSize;
  const backing = backingOf(node);
  if (backing) {
    info['backing-filename'] = f?.backingFilename ?? backing.filename();
    info['full-backing-filename'] = backing.filename();
    info['backing-filename-format'] = backing.driver.name;
  } else if (f?.backingFilename !== undefined) {
    // Opened with backing: null, QEMU 7.2 still shows what the image records (measured over QMP).
    info['backing-filename'] = f.backingFilename;
    if (f.backingFormat !== undefined) info['backing-filename-format'] = f.backingFormat;
  }
  const below = chain ? filterOrCow(node) : undefined;
  if (below) info['backing-image'] = imageInfo(below, true);
  if (f?.snapshots?.length) info.snapshots = f.snapshots;
  const specific = node.ops.info?.();
  if (specific) info['format-specific'] = { type: node.driver.name, data: specific };
  return info;
}

/**
 * QAPI BlockDeviceInfo of `node`. `writeback` is the write-cache setting of the BlockBackend
 * the node is shown for (query-block); nodes on their own report true, as QEMU does.
 */
export function nodeInfo(node: BlockNode, writeback = true): Record<string, unknown> {
  const cache = (node.options.cache ?? {}) as { direct?: boolean; 'no-flush'?: boolean };
  const info: Record<string, unknown> = {
    file: node.filename(),
    'node-name': node.nodeName,
    ro: node.readOnly,
    drv: node.driver.name,
  };
  const backing = backingOf(node);
  if (backing) info.backing_file = backing.filename();
  Object.assign(info, {
    backing_file_depth: backingDepth(node),
    encrypted: false,
    detect_zeroes: node.options['detect-zeroes'] ?? 'off',
    // No I/O throttling on nodes yet: QEMU reports zero limits.
    bps: 0,
    bps_rd: 0,
    bps_wr: 0,
    iops: 0,
    iops_rd: 0,
    iops_wr: 0,
    image: imageInfo(node, true),
    cache: { writeback, direct: cache.direct === true, 'no-flush': cache['no-flush'] === true },
    write_threshold: 0,
  });
  // bdrv_query_dirty_bitmaps: present only when the node has bitmaps.
  if (node.dirtyBitmaps.length > 0) info['dirty-bitmaps'] = node.dirtyBitmaps.map((b) => b.info());
  return info;
}
