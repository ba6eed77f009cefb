/**
 * block-commit (qapi/block-core.json; blockdev.c qmp_block_commit): an intermediate commit
 * (top-node below the active layer) is a CommitJob; committing the active layer is a mirror
 * into the base that goes ready and pivots the drive to the base on job-complete.
 */
import { genericError, QmpError } from '../../block/errors.ts';
import type { BlockNode } from '../../block/node.ts';
import type { BlockGraph } from '../../graph/graph.ts';
import type { OnError } from '../../jobs/block-job.ts';
import { backingOf, depthBelow, overlayOf } from '../../jobs/chain.ts';
import { CommitJob } from '../../jobs/commit.ts';
import { MirrorJob } from '../../jobs/mirror.ts';
import { jobsOf } from '../../jobs/registry.ts';
import { chainAbove, checkNotBlocked, COMMON_JOB_ARGS, jobOptions, ON_ERROR } from './job-args.ts';
import { lookupNode } from './lookup.ts';
import type { QmpCommand } from './types.ts';
import { NOTHING } from './types.ts';

/** mirror.c's defaults, which active commit uses too. */
const GRANULARITY = 64 * 1024;
const BUF_SIZE = 1024 * 1024;

export const blockCommit: QmpCommand = {
  name: 'block-commit',
  help: 'commit top-node (default: the active layer) and the layers below it into base-node (default: the bottom)',
  args: {
    'job-id': COMMON_JOB_ARGS['job-id'],
    device: { type: 'str', help: 'the drive or node whose chain is committed' },
    'base-node': { type: 'str', optional: true, help: 'the node committed into' },
    'top-node': { type: 'str', optional: true, help: 'the highest node committed' },
    'backing-file': { type: 'str', optional: true, help: 'the backing file name written into the overlay' },
    speed: COMMON_JOB_ARGS.speed,
    'on-error': { type: ON_ERROR, optional: true, help: 'report|ignore|enospc|stop' },
    'auto-finalize': COMMON_JOB_ARGS['auto-finalize'],
    'auto-dismiss': COMMON_JOB_ARGS['auto-dismiss'],
  },
  run(ctx, args) {
    const graph = ctx.graph;
    const device = args.device as string;
    const root = deviceNode(graph, device);
    const top =
      args['top-node'] === undefined ? root : lookupNode(graph, undefined, args['top-node'] as string);
    const base =
      args['base-node'] === undefined
        ? bottomOf(top)
        : lookupNode(graph, undefined, args['base-node'] as string);
    if (top === base) throw genericError('cannot commit an image into itself');
    const baseDepth = depthBelow(top, base);
    if (!baseDepth || depthBelow(root, top) === undefined) {
      throw genericError(`'${base.nodeName}' and '${top.nodeName}' are not in the same chain`);
    }
    const opts = jobOptions(graph, args, device);
    const nodes = [...chainAbove(top, base, backingOf), base];
    checkNotBlocked(graph, nodes);
    const onError = args['on-error'] as OnError | undefined;
    const registry = jobsOf(graph);
    const job =
      top === root
        ? new MirrorJob(registry, {
            ...opts,
            source: top,
            target: base,
            sync: { base, baseDepth },
            granularity: GRANULARITY,
            bufSize: BUF_SIZE,
            onSourceError: onError,
            onTargetError: onError,
          })
        : new CommitJob(registry, {
            ...opts,
            top,
            overlay: overlayOf(root, top)!,
            base,
            backingFile: args['backing-file'] as string | undefined,
            onError,
          });
    registry.block(job, nodes);
    registry.add(job);
    return NOTHING;
  },
};

/** The drive's medium or the node `device` names; QEMU's DeviceNotFound otherwise. */
function deviceNode(graph: BlockGraph, device: string): BlockNode {
  const node = graph.backends.get(device)?.root ?? graph.nodes.get(device);
  if (!node) throw new QmpError('DeviceNotFound', `Device '${device}' not found`);
  return node;
}

/** bdrv_find_base: the last node of the backing chain. */
function bottomOf(top: BlockNode): BlockNode {
  let n = top;
  for (let b = backingOf(n); b; b = backingOf(n)) n = b;
  return n;
}
