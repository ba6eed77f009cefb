/**
 * Commands that QEMU 7.2 runs as jobs and blockgraph's clients expect to finish within the
 * command (blockdev-create, x-blockdev-amend, snapshot-save/-load/-delete): the job is a real
 * job (query-jobs lists it while it runs; JOB_STATUS_CHANGE created, running, waiting, pending,
 * concluded — or aborting, concluded — and null), but the command answers once it concluded, is
 * auto-dismissed, and a failure is the command's error rather than the concluded job's `error`.
 */
import { Job, type JobHost } from '../../jobs/job.ts';
import { jobsOf } from '../../jobs/registry.ts';
import type { BlockGraph } from '../../graph/graph.ts';

/** A job whose work is one call; progress 0/1 until it returns, as QEMU's create jobs report. */
class SyncJob extends Job {
  failure: unknown;

  constructor(
    host: JobHost,
    id: string,
    readonly type: string,
    private readonly body: () => Promise<void>,
  ) {
    super(host, { id });
    this.total = 1;
  }

  protected async run(): Promise<void> {
    try {
      await this.body();
    } catch (err) {
      this.failure = err;
      throw err;
    }
    this.current = 1;
  }
}

/** Runs `body` as a job `jobId` of QAPI JobType `type`; throws what `body` threw. */
export async function runSyncJob(
  graph: BlockGraph,
  jobId: string,
  body: () => Promise<void>,
  type = 'create',
): Promise<void> {
  const registry = jobsOf(graph);
  registry.checkId(jobId);
  const job = new SyncJob(registry, jobId, type, body);
  registry.add(job);
  await job.concluded;
  if (job.failure !== undefined) throw job.failure;
}
