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
import { MIRROR_DEFAULTS, MirrorJob } from '../../jobs/mirror.ts';
import { writableForJob } from '../../jobs/read-only.ts';
import { jobsOf } from '../../jobs/registry.ts';
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

export const blockCommit: QmpCommand = {
  name: 'block-commit',
  help: 'commit top-node (default: the active layer) and the layers below it into base-node (default: the bottom)',
  args: blockJobArgs({
    device: { type: 'str', help: 'the drive or node whose chain is committed' },
    'base-node': { type: 'str', optional: true, help: 'the node committed into' },
    'top-node': { type: 'str', optional: true, help: 'the highest node committed' },
    'backing-file': { type: 'str', optional: true, help: 'the backing file name written into the overlay' },
    speed: COMMON_JOB_ARGS.speed,
    'on-error': ON_ERROR_ARG,
  }),
  async run(ctx, args) {
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
    let job: MirrorJob | CommitJob;
    if (top === root) {
      // commit_active_start makes a read-only base writable before the job exists.
      job = new MirrorJob(registry, {
        ...opts,
        reopened: await writableForJob(graph, base),
        source: top,
        target: base,
        sync: { base, baseDepth },
        ...MIRROR_DEFAULTS,
        onSourceError: onError,
        onTargetError: onError,
      });
    } else {
      // commit_start creates the job first: a failed reopen ends it at once (job_early_fail,
      // JOB_STATUS_CHANGE created then null, as QEMU 7.2 sends them).
      job = new CommitJob(registry, {
        ...opts,
        reopened: base.readOnly ? [base] : [],
        top,
        overlay: overlayOf(root, top)!,
        base,
        backingFile: args['backing-file'] as string | undefined,
        onError,
      });
      await writableForJob(graph, base).catch((err: unknown) => {
        job.earlyFail();
        throw err;
      });
    }
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
