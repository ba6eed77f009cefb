/**
 * Commands that QEMU 7.2 runs as jobs (blockdev-create, x-blockdev-amend), run synchronously
 * until blockgraph has jobs: the job is created, run and dismissed within the command. The
 * JOB_STATUS_CHANGE events are QEMU's (created, running, then waiting, pending, concluded — or
 * aborting, concluded — and null, as if auto-dismissed), and a failure is the command's error
 * instead of the concluded job's `error` in query-jobs.
 */
import { genericError } from '../../block/errors.ts';
import type { BlockGraph } from '../../graph/graph.ts';
import { WELL_FORMED } from '../../graph/node-name.ts';

/** job_create's check of the id (id_wellformed), then the job's life around `body`. */
export async function runSyncJob(graph: BlockGraph, jobId: string, body: () => Promise<void>): Promise<void> {
  if (!WELL_FORMED.test(jobId)) throw genericError(`Invalid job ID '${jobId}'`);
  const status = (s: string) => graph.emit('JOB_STATUS_CHANGE', { status: s, id: jobId });
  status('created');
  status('running');
  try {
    await body();
  } catch (err) {
    for (const s of ['aborting', 'concluded', 'null']) status(s);
    throw err;
  }
  for (const s of ['waiting', 'pending', 'concluded', 'null']) status(s);
}
