/**
 * `blockgraph info`: qemu-img info. Prints an image's QAPI ImageInfo (block/node-info.ts) in
 * qemu-img's human form or as its JSON. With --backing-chain every image of the chain is shown,
 * the JSON then being a list. Format-specific information (qcow2's) is not printed yet.
 */
import type { BlockNode } from '../block/node.ts';
import { imageInfo } from '../block/node-info.ts';
import { BlockGraph } from '../graph/graph.ts';
import { sizeToStr } from './format.ts';
import { parseImageArgs } from './img-args.ts';
import { openImage } from './image-opts.ts';
import { qobjectJson } from './json.ts';
import { CliExit, runReporting, type CliIo } from './program.ts';

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
    const spec = { ...parsed.image, filename: parsed.operands[0], readOnly: true };
    const graph = new BlockGraph();
    let image;
    try {
      image = await openImage(graph, spec);
    } catch (err) {
      throw new CliExit(`Could not open '${spec.filename}': ${(err as Error).message}`);
    }
    try {
      const chain = backingChain(image.node, parsed.values('backing-chain').length > 0);
      const infos = chain.map((node, i) => chainEntry(node, i === 0 ? image.name : node.filename()));
      if (output === 'json') {
        io.out(`${qobjectJson(parsed.values('backing-chain').length > 0 ? infos : infos[0], true)}\n`);
      } else {
        io.out(infos.map(humanInfo).join('\n'));
      }
      return 0;
    } finally {
      await graph.release(image.node);
    }
  });
}

/** The image, and with `all` each image below it through backing links. */
function backingChain(node: BlockNode, all: boolean): BlockNode[] {
  const chain = [node];
  for (let n: BlockNode | undefined = node; all && n;) {
    n = n.childList.find((c) => c.role === 'backing')?.node;
    if (n) chain.push(n);
  }
  return chain;
}

/** One image's ImageInfo as qemu-img shows it: named as opened, without the nested chain. */
function chainEntry(node: BlockNode, name: string): Record<string, unknown> {
  const { 'backing-image': _nested, ...info } = imageInfo(node);
  return { ...info, filename: name };
}

/** bdrv_image_info_dump() for the members raw images have. */
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
  return lines.map((l) => `${l}\n`).join('');
}
