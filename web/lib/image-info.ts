/**
 * What the site shows of an image before using it: query-named-block-nodes of a node opened
 * read-only for the purpose (and closed again), so the worker reads only the headers and tables
 * it needs — a dropped 5 GiB File is never read whole.
 */
import type { BlockgraphClient } from '../../src/client/index.ts';

export interface ImageSummary {
  readonly format: string;
  readonly virtualSize: number;
  readonly actualSize?: number;
  readonly clusterSize?: number;
  readonly backingFile?: string;
  readonly backingFormat?: string;
  /** qcow2's compression type (zlib, zstd). */
  readonly compression?: string;
  readonly snapshots: readonly { name: string; 'vm-state-size': number }[];
}

interface NodeRow {
  'node-name': string;
  image: Record<string, unknown>;
}

let serial = 0;

/**
 * Opens `options` (blockdev-add, without node-name) read-only with its backing left out, and
 * returns its ImageInfo summary. Fails with the worker's QmpError when it cannot be opened.
 */
export async function imageSummary(
  client: BlockgraphClient,
  options: Record<string, unknown>,
): Promise<ImageSummary> {
  const nodeName = `site-info${serial++}`;
  const backing = options.driver === 'qcow2' ? { backing: null } : {};
  await client.execute('blockdev-add', { ...options, ...backing, 'node-name': nodeName, 'read-only': true });
  try {
    const rows = await client.execute<NodeRow[]>('query-named-block-nodes');
    const image = rows.find((r) => r['node-name'] === nodeName)!.image;
    const specific = (image['format-specific'] as { data?: Record<string, unknown> } | undefined)?.data;
    return {
      format: image.format as string,
      virtualSize: image['virtual-size'] as number,
      actualSize: image['actual-size'] as number | undefined,
      clusterSize: image['cluster-size'] as number | undefined,
      backingFile: image['backing-filename'] as string | undefined,
      backingFormat: image['backing-filename-format'] as string | undefined,
      compression: specific?.['compression-type'] as string | undefined,
      snapshots: (image.snapshots ?? []) as ImageSummary['snapshots'],
    };
  } finally {
    await client.execute('blockdev-del', { 'node-name': nodeName });
  }
}

/** The format by its first bytes: qcow2's magic, else raw (an ISO is raw to the block layer). */
export async function probeFormat(blob: Blob): Promise<'qcow2' | 'raw'> {
  const magic = new Uint8Array(await blob.slice(0, 4).arrayBuffer());
  return magic.length === 4 && String.fromCharCode(...magic) === 'QFI\xfb' ? 'qcow2' : 'raw';
}

/** True when the Blob holds an ISO 9660 file system ("CD001" at 32769). */
export async function isIso(blob: Blob): Promise<boolean> {
  const id = new Uint8Array(await blob.slice(32769, 32774).arrayBuffer());
  return String.fromCharCode(...id) === 'CD001';
}
