/**
 * The jobs of blockdev-create, x-blockdev-amend and snapshot-save/-load/-delete, as QEMU 7.2
 * makes them (block/create.c, block/amend.c, migration/savevm.c: job_create with
 * JOB_MANUAL_DISMISS). The command answers `{}` once the job started; the job's one call runs in
 * the background with progress 0/1, and 1/1 once it returned, failed or not; a failure is the
 * concluded job's `error` in query-jobs, and the job stays until job-dismiss. Clients wait for it
 * with runJobCommand (src/jobs/job-command.ts).
 */
import { Job, type JobHost } from '../../jobs/job.ts';
import { jobsOf } from '../../jobs/registry.ts';
import type { BlockGraph } from '../../graph/graph.ts';

class OneShotJob extends Job {
  constructor(
    host: JobHost,
    id: string,
    readonly type: string,
    private readonly body: () => Promise<void>,
  ) {
    super(host, { id, autoDismiss: false });
    this.total = 1;
  }

  protected async run(): Promise<void> {
    try {
      await this.body();
    } finally {
      this.current = 1;
    }
  }
}

/** Starts `body` as job `jobId` of QAPI JobType `type` (job_create's id checks first). */
export function startOneShotJob(
  graph: BlockGraph,
  jobId: string,
  type: string,
  body: () => Promise<void>,
): void {
  const registry = jobsOf(graph);
  registry.checkId(jobId);
  registry.add(new OneShotJob(registry, jobId, type, body));
}
