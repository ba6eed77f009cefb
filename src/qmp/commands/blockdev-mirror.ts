/** blockdev-mirror (qapi/block-core.json; blockdev.c qmp_blockdev_mirror). */
import { genericError } from '../../block/errors.ts';
import type { OnError } from '../../jobs/block-job.ts';
import { MIRROR_DEFAULTS, MirrorJob, type MirrorOptions, type MirrorSync } from '../../jobs/mirror.ts';
import { jobsOf } from '../../jobs/registry.ts';
import {
  blockJobArgs,
  checkNotBlocked,
  COMMON_JOB_ARGS,
  jobOptions,
  ON_ERROR_ARG,
  SYNC_ARG,
} from './job-args.ts';
import { lookupNode, lookupRootNode } from './lookup.ts';
import type { QmpCommand } from './types.ts';
import { NOTHING } from './types.ts';

export const blockdevMirror: QmpCommand = {
  name: 'blockdev-mirror',
  help: 'copy a drive to the target node while the guest runs; ready when in sync, job-complete pivots the drive to the target',
  args: blockJobArgs({
    device: { type: 'str', help: 'the drive or root node mirrored' },
    target: { type: 'str', help: 'the node written' },
    sync: { type: SYNC_ARG, help: 'full|top|none' },
    speed: COMMON_JOB_ARGS.speed,
    granularity: { type: 'int', optional: true, help: 'bytes per dirty bit (power of 2, 512 B..64 MiB)' },
    'buf-size': { type: 'int', optional: true, help: 'the most bytes in one copy (default 1 MiB)' },
    'on-source-error': ON_ERROR_ARG,
    'on-target-error': ON_ERROR_ARG,
    'copy-mode': {
      type: { enum: ['background', 'write-blocking'] },
      optional: true,
      help: 'write-blocking: guest writes also reach the target before they complete (always converges)',
    },
  }),
  run(ctx, args) {
    const graph = ctx.graph;
    const device = args.device as string;
    const source = lookupRootNode(graph, device);
    const target = lookupNode(graph, args.target as string, args.target as string);
    checkNotBlocked(graph, [source, target]);
    const sync = args.sync as string;
    if (sync === 'incremental' || sync === 'bitmap') {
      throw genericError(`Sync mode '${sync}' not supported`);
    }
    const granularity = (args.granularity as number | undefined) ?? MIRROR_DEFAULTS.granularity;
    if (granularity !== 0 && (granularity & (granularity - 1)) !== 0) {
      throw genericError("Parameter 'granularity' expects a power of 2");
    }
    if (granularity < 512 || granularity > 64 * 1024 * 1024) {
      throw genericError("Parameter 'granularity' expects a value in range [512B, 64MB]");
    }
    const bufSize = (args['buf-size'] as number | undefined) || MIRROR_DEFAULTS.bufSize;
    if (target === source) throw genericError(`Can't mirror node into itself`);
    const opts = jobOptions(graph, args, device);
    const registry = jobsOf(graph);
    const job = new MirrorJob(registry, {
      ...opts,
      source,
      target,
      sync: sync as MirrorSync,
      granularity,
      bufSize: Math.max(bufSize, granularity),
      onSourceError: args['on-source-error'] as OnError | undefined,
      onTargetError: args['on-target-error'] as OnError | undefined,
      copyMode: args['copy-mode'] as MirrorOptions['copyMode'],
    });
    registry.block(job, [source, target]);
    registry.add(job);
    return NOTHING;
  },
};
