/**
 * `blockgraph info`: qemu-img info. Prints an image's QAPI ImageInfo (block/node-info.ts) in
 * qemu-img's human form or as its JSON. With --backing-chain every image of the chain is shown,
 * the JSON then being a list. The human form is block/qapi.c's bdrv_image_info_dump: the basic
 * facts, the backing file, the snapshot table and the format-specific data as an indented dump.
 */
import type { SnapshotInfo } from '../block/driver.ts';
import type { BlockNode } from '../block/node.ts';
import { imageInfo } from '../block/node-info.ts';
import { resolveRelative } from '../drivers/format/qcow2/backing.ts';
import { BlockGraph } from '../graph/graph.ts';
import type { ObjectRegistry } from '../objects/registry.ts';
import { sizeToStr } from './format.ts';
import { parseImageArgs } from './img-args.ts';
import { openImage, orCouldNotOpen, type ImageSpec } from './image-opts.ts';
import { qdictKeys, qobjectJson } from '../config/qjson.ts';
import { CliExit, runReporting, type CliIo } from './program.ts';
import { snapshotList } from './snapshot.ts';

export async function run(args: string[], io: CliIo): Promise<number> {
  return runReporting(io, async () => {
    const parsed = parseImageArgs(args, 'f:hU', [
      { name: 'output', hasArg: true },
      { name: 'backing-chain', hasArg: false },
    ]);
    const output = parsed.values('output').at(-1) ?? 'human';
    if (output !== 'human' && output !== 'json') {
      throw new CliExit('--output must be used with human or json as argument.');
    }
    if (parsed.operands.length !== 1) throw new CliExit('Expecting one image file name', true);
    const chain = parsed.values('backing-chain').length > 0;
    const first: ImageSpec = { ...parsed.image, filename: parsed.operands[0] };
    const infos = await collectImageInfo(first, chain, parsed.objects);
    if (output === 'json') io.out(`${qobjectJson(chain ? infos : infos[0], true)}\n`);
    else io.out(infos.map(humanInfo).join('\n'));
    return 0;
  });
}

/**
 * collect_image_info_list: the ImageInfo of the image, and with `chain` of each image below it,
 * each opened on its own without its backing file (so an image whose backing file is missing
 * can still be shown), the next one by the resolved name and format its overlay records.
 */
async function collectImageInfo(
  first: ImageSpec,
  chain: boolean,
  objects: ObjectRegistry,
): Promise<Record<string, unknown>[]> {
  const infos: Record<string, unknown>[] = [];
  const seen = new Set<string>();
  for (let spec: ImageSpec | undefined = first; spec;) {
    if (seen.has(spec.filename))
      throw new CliExit(`Backing file '${spec.filename}' creates an infinite loop.`);
    seen.add(spec.filename);
    const info = await imageInfoOf(spec, objects);
    infos.push(info);
    const next = info['full-backing-filename'] as string | undefined;
    const format = info['backing-filename-format'] as string | undefined;
    spec = chain && next !== undefined ? { filename: next, format, forceShare: first.forceShare } : undefined;
  }
  return infos;
}

/** One image's ImageInfo as qemu-img shows it: named as opened, its backing file as recorded. */
async function imageInfoOf(spec: ImageSpec, objects: ObjectRegistry): Promise<Record<string, unknown>> {
  const graph = new BlockGraph(undefined, objects);
  const image = await orCouldNotOpen(spec.filename, () =>
    openImage(graph, { ...spec, readOnly: true, noBacking: true }),
  );
  try {
    return { ...imageInfo(image.node), ...recordedBacking(image.node), filename: image.name };
  } finally {
    await graph.release(image.node);
  }
}

/**
 * bdrv_query_image_info's backing members for an image opened without its backing file: the
 * name and format the image records, and the name resolved next to the image's own file.
 */
function recordedBacking(node: BlockNode): Record<string, unknown> {
  const facts = node.ops.imageFacts?.();
  const name = facts?.backingFilename;
  if (!name) return {};
  const file = node.primaryChild() ?? node;
  const info: Record<string, unknown> = {
    'backing-filename': name,
    'full-backing-filename': resolveRelative(file.filename(), name),
  };
  if (facts.backingFormat !== undefined) info['backing-filename-format'] = facts.backingFormat;
  return info;
}

/** bdrv_image_info_dump(). */
function humanInfo(info: Record<string, unknown>): string {
  const size = info['virtual-size'] as number;
  const actual = info['actual-size'] as number | undefined;
  const lines = [
    `image: ${String(info.filename)}`,
    `file format: ${String(info.format)}`,
    `virtual size: ${sizeToStr(size)} (${size} bytes)`,
    `disk size: ${actual === undefined ? 'unavailable' : sizeToStr(actual)}`,
  ];
  if (info['cluster-size'] !== undefined) lines.push(`cluster_size: ${String(info['cluster-size'])}`);
  if (info['dirty-flag'] === true) lines.push('cleanly shut down: no');
  lines.push(...backingLines(info));
  let text = lines.map((l) => `${l}\n`).join('');
  const snapshots = info.snapshots as SnapshotInfo[] | undefined;
  if (snapshots) text += snapshotList(snapshots);
  const specific = info['format-specific'] as { data: unknown } | undefined;
  if (specific) text += `Format specific information:\n${dumpQObject(1, specific.data)}`;
  return text;
}

/** The backing file, with its resolved path where that differs from the name in the image. */
function backingLines(info: Record<string, unknown>): string[] {
  const name = info['backing-filename'] as string | undefined;
  if (name === undefined) return [];
  const full = info['full-backing-filename'] as string | undefined;
  let line = `backing file: ${name}`;
  if (full === undefined) line += ' (cannot determine actual path)';
  else if (full !== name) line += ` (actual path: ${full})`;
  const format = info['backing-filename-format'];
  return format === undefined ? [line] : [line, `backing file format: ${String(format)}`];
}

function isComposite(value: unknown): value is object {
  return typeof value === 'object' && value !== null;
}

/**
 * dump_qobject: scalars as they are; dictionaries one "key: value" line each in QDict order,
 * dashes in keys shown as spaces; lists one "[i]: value" line each; nested ones on the following
 * lines, four spaces further in.
 */
function dumpQObject(indent: number, value: unknown): string {
  if (!isComposite(value)) return String(value);
  const entries: [string, unknown][] = Array.isArray(value)
    ? value.map((v, i) => [`[${i}]`, v])
    : qdictKeys(value as Record<string, unknown>).map((k) => [
        k.replaceAll('-', ' '),
        (value as Record<string, unknown>)[k],
      ]);
  const pad = ' '.repeat(indent * 4);
  return entries
    .map(([key, v]) =>
      isComposite(v) ? `${pad}${key}:\n${dumpQObject(indent + 1, v)}` : `${pad}${key}: ${String(v)}\n`,
    )
    .join('');
}
