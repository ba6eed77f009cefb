/**
 * The jobs of one graph (QEMU's global job list) and the nodes they block (the op blockers a
 * block job puts on the nodes it works on). Kept beside the graph rather than in it: jobsOf()
 * finds a graph's registry.
 */
import { genericError, QmpError } from '../block/errors.ts';
import type { BlockNode } from '../block/node.ts';
import type { BlockGraph } from '../graph/graph.ts';
import { WELL_FORMED } from '../graph/node-name.ts';
import type { Job, JobHost } from './job.ts';

export class JobRegistry implements JobHost {
  /** Newest first, the order of query-jobs (QEMU inserts at the head of its list). */
  private list: Job[] = [];
  private readonly blockers = new Map<BlockNode, Job>();

  constructor(readonly graph: BlockGraph) {}

  get emit() {
    return this.graph.emit;
  }

  jobs(): readonly Job[] {
    return this.list;
  }

  /** job_create's checks of a new job's id: well-formed and unused. */
  checkId(id: string): void {
    if (!WELL_FORMED.test(id)) throw genericError(`Invalid job ID '${id}'`);
    if (this.list.some((j) => j.id === id)) throw genericError(`Job ID '${id}' already in use`);
  }

  /** Registers a created job (its id checked with checkId) and starts it. */
  add(job: Job): void {
    this.list.unshift(job);
    job.start();
  }

  remove(job: Job): void {
    this.list = this.list.filter((j) => j !== job);
    for (const [node, owner] of this.blockers) if (owner === job) this.blockers.delete(node);
  }

  /** job_get: the job `id` names, or QEMU's "Job not found". */
  find(id: string): Job {
    const job = this.list.find((j) => j.id === id);
    if (!job) throw genericError('Job not found');
    return job;
  }

  /** find_block_job: as find, with the block-job-* commands' class and text. */
  findBlockJob(id: string): Job {
    const job = this.list.find((j) => j.id === id);
    if (!job || !('device' in job)) throw new QmpError('DeviceNotActive', `Block job '${id}' not found`);
    return job;
  }

  /** Refuses a node another job works on, with the op blocker's text. */
  checkNotBlocked(node: BlockNode): void {
    const owner = this.blockers.get(node);
    if (owner) {
      throw genericError(
        `Node '${node.nodeName}' is busy: block device is in use by block job: ${owner.type}`,
      );
    }
  }

  /** block_job_add_bdrv: `job` works on `nodes` until it is gone. */
  block(job: Job, nodes: Iterable<BlockNode>): void {
    for (const node of nodes) this.blockers.set(node, job);
  }

  /** Releases the nodes `job` blocked (when it concludes, before it is dismissed). */
  unblock(job: Job): void {
    for (const [node, owner] of this.blockers) if (owner === job) this.blockers.delete(node);
  }
}

const REGISTRIES = new WeakMap<BlockGraph, JobRegistry>();

/** The job registry of `graph`, made on first use. */
export function jobsOf(graph: BlockGraph): JobRegistry {
  let registry = REGISTRIES.get(graph);
  if (!registry) REGISTRIES.set(graph, (registry = new JobRegistry(graph)));
  return registry;
}
