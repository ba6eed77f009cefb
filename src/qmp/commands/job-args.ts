/** Arguments and lookups the block job commands share (blockdev.c). */
import { genericError } from '../../block/errors.ts';
import type { BlockNode } from '../../block/node.ts';
import type { BlockGraph } from '../../graph/graph.ts';
import type { BlockJobOptions } from '../../jobs/block-job.ts';
import { jobsOf } from '../../jobs/registry.ts';
import type { ArgSpec, ArgsSchema } from '../args.ts';

export const ON_ERROR: ArgSpec['type'] = { enum: ['report', 'ignore', 'enospc', 'stop', 'auto'] };

/** job-id, speed, auto-finalize and auto-dismiss. */
export const COMMON_JOB_ARGS = {
  'job-id': { type: 'str', optional: true, help: 'the job id (default: the device name)' },
  speed: { type: 'int', optional: true, help: 'bytes per second (0: unlimited)' },
  'auto-finalize': { type: 'bool', optional: true, help: 'finalize without job-finalize' },
  'auto-dismiss': { type: 'bool', optional: true, help: 'disappear once concluded' },
} as const;

/** on-error, on-source-error, on-target-error: a BlockdevOnError. */
export const ON_ERROR_ARG = { type: ON_ERROR, optional: true, help: 'report|ignore|enospc|stop' } as const;

/** QAPI MirrorSyncMode (mirror and backup; mirror takes full, top and none). */
export const SYNC_ARG = { enum: ['top', 'full', 'none', 'incremental', 'bitmap'] } as const;

/**
 * A block job command's arguments in QAPI order: `job-id`, the command's own (`speed` among
 * them where its schema has it), then auto-finalize and auto-dismiss.
 */
export function blockJobArgs(own: ArgsSchema): ArgsSchema {
  const { 'job-id': jobId, 'auto-finalize': autoFinalize, 'auto-dismiss': autoDismiss } = COMMON_JOB_ARGS;
  return { 'job-id': jobId, ...own, 'auto-finalize': autoFinalize, 'auto-dismiss': autoDismiss };
}

/**
 * The BlockJobOptions of a command's arguments, after job_create's checks of the id (defaulting
 * to the name of the drive `device` names, as block_job_create does) and of the speed.
 */
export function jobOptions(
  graph: BlockGraph,
  args: Record<string, unknown>,
  device: string,
): BlockJobOptions {
  const id = (args['job-id'] as string | undefined) ?? (graph.backends.has(device) ? device : '');
  jobsOf(graph).checkId(id);
  const speed = (args.speed as number | undefined) ?? 0;
  if (speed < 0) throw genericError("Parameter 'speed' expects a non-negative value");
  return {
    id,
    speed,
    autoFinalize: args['auto-finalize'] as boolean | undefined,
    autoDismiss: args['auto-dismiss'] as boolean | undefined,
  };
}

/** Refuses nodes another job works on (the op blockers' check). */
export function checkNotBlocked(graph: BlockGraph, nodes: Iterable<BlockNode>): void {
  for (const node of nodes) jobsOf(graph).checkNotBlocked(node);
}

/** The nodes from `top` down to (not including) `base` in top's backing chain. */
export function chainAbove(
  top: BlockNode,
  base: BlockNode | null,
  backingOf: (n: BlockNode) => BlockNode | undefined,
): BlockNode[] {
  const nodes: BlockNode[] = [];
  for (let n: BlockNode | undefined = top; n && n !== base; n = backingOf(n)) nodes.push(n);
  return nodes;
}
