/**
 * Running a command that starts a job QEMU leaves for job-dismiss (blockdev-create,
 * x-blockdev-amend, snapshot-save/-load/-delete) and waiting for its end, as QEMU's own clients
 * do (iotests' run_job): the command answers at once; once query-jobs shows the job concluded,
 * its `error` (if any) is the failure, and job-dismiss removes it.
 */
import { genericError } from '../block/errors.ts';

/** A QMP client's execute: the command's return value, or a throw with its error. */
export type Execute = (command: string, args?: Record<string, unknown>) => Promise<unknown>;

interface JobInfo {
  readonly id: string;
  readonly status: string;
  readonly error?: string;
}

/** Runs `command` (its `job-id` in `args`), waits for the job, dismisses it; throws its error. */
export async function runJobCommand(
  execute: Execute,
  command: string,
  args: Readonly<Record<string, unknown>>,
): Promise<void> {
  const id = args['job-id'] as string;
  await execute(command, { ...args });
  const job = await concluded(execute, id);
  await execute('job-dismiss', { id });
  if (job.error !== undefined) throw genericError(job.error);
}

/** Polls query-jobs (every 1 ms at first, backing off to 50 ms) until job `id` concluded. */
async function concluded(execute: Execute, id: string): Promise<JobInfo> {
  for (let wait = 1; ; wait = Math.min(2 * wait, 50)) {
    const job = ((await execute('query-jobs')) as JobInfo[]).find((j) => j.id === id);
    if (!job) throw genericError('Job not found');
    if (job.status === 'concluded') return job;
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
}

/** The commands whose jobs QEMU leaves for job-dismiss (JOB_MANUAL_DISMISS). */
const ONE_SHOT = new Set([
  'blockdev-create',
  'x-blockdev-amend',
  'snapshot-save',
  'snapshot-load',
  'snapshot-delete',
]);

/**
 * `execute`, except that the commands above answer once their job concluded (runJobCommand), for
 * clients that run such commands in a list among others (set-up steps).
 */
export function waitingForJobs(execute: Execute): Execute {
  return (command, args) =>
    ONE_SHOT.has(command) && args
      ? runJobCommand(execute, command, args).then(() => ({}))
      : execute(command, args);
}
