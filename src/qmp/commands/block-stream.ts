/** block-stream (qapi/block-core.json; blockdev.c qmp_block_stream). */
import { genericError } from '../../block/errors.ts';
import type { BlockNode } from '../../block/node.ts';
import type { OnError } from '../../jobs/block-job.ts';
import { backingOf, depthBelow } from '../../jobs/chain.ts';
import { writableForJob } from '../../jobs/read-only.ts';
import { jobsOf } from '../../jobs/registry.ts';
import { StreamJob } from '../../jobs/stream.ts';
import {
  blockJobArgs,
  chainAbove,
  checkNotBlocked,
  COMMON_JOB_ARGS,
  jobOptions,
  ON_ERROR_ARG,
} from './job-args.ts';
import { lookupNode } from './lookup.ts';
import type { QmpCommand } from './types.ts';
import { NOTHING } from './types.ts';

export const blockStream: QmpCommand = {
  name: 'block-stream',
  help: 'copy the backing chain’s data (above base-node, or up to bottom) into the image, then drop those backing files',
  args: blockJobArgs({
    device: { type: 'str', help: 'the drive or node streamed into' },
    'base-node': { type: 'str', optional: true, help: 'the backing node that stays (default: none)' },
    'backing-file': { type: 'str', optional: true, help: 'the backing file name written into the image' },
    bottom: { type: 'str', optional: true, help: 'the lowest node streamed' },
    speed: COMMON_JOB_ARGS.speed,
    'on-error': ON_ERROR_ARG,
  }),
  async run(ctx, args) {
    const graph = ctx.graph;
    const device = args.device as string;
    if (args['base-node'] !== undefined && args.bottom !== undefined) {
      throw genericError("'bottom' and 'base-node' cannot be specified at the same time");
    }
    const top = lookupNode(graph, device, device);
    let base: BlockNode | null = null;
    if (args['base-node'] !== undefined) {
      base = lookupNode(graph, undefined, args['base-node'] as string);
      if (!depthBelow(top, base)) {
        throw genericError(`Node '${base.nodeName}' is not a backing image of '${device}'`);
      }
    } else if (args.bottom !== undefined) {
      const bottom = lookupNode(graph, undefined, args.bottom as string);
      if (!depthBelow(top, bottom)) {
        throw genericError(`Node '${bottom.nodeName}' is not a backing image of '${device}'`);
      }
      base = backingOf(bottom) ?? null;
    }
    if (!base && args['backing-file'] !== undefined) {
      throw genericError('backing file specified, but streaming the entire chain');
    }
    const opts = jobOptions(graph, args, device);
    const nodes = chainAbove(top, base, backingOf);
    checkNotBlocked(graph, nodes);
    // stream_start: a read-only top is made writable before the job exists.
    const reopened = await writableForJob(graph, top);
    const registry = jobsOf(graph);
    const job = new StreamJob(registry, {
      ...opts,
      reopened,
      top,
      base,
      backingFile: args['backing-file'] as string | undefined,
      onError: args['on-error'] as OnError | undefined,
    });
    registry.block(job, nodes);
    registry.add(job);
    return NOTHING;
  },
};
