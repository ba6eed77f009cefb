/** The generic job commands (qapi/job.json): query-jobs and job-pause/resume/cancel/complete/finalize/dismiss. */
import { jobsOf } from '../../jobs/registry.ts';
import type { Job } from '../../jobs/job.ts';
import type { QmpCommand, QmpContext } from './types.ts';
import { NOTHING } from './types.ts';

const ID = { id: { type: 'str', help: 'the job id' } } as const;

/** A command `job-<verb>` applying `act` to the job `id` names. */
function verb(name: string, help: string, act: (job: Job) => unknown): QmpCommand {
  return {
    name,
    help,
    args: ID,
    async run(ctx: QmpContext, args) {
      await act(jobsOf(ctx.graph).find(args.id as string));
      return NOTHING;
    },
  };
}

export const jobPause = verb('job-pause', 'pause a job', (j) => j.userPause());
export const jobResume = verb('job-resume', 'resume a job paused by job-pause', (j) => j.userResume());
export const jobCancel = verb('job-cancel', 'cancel a job', (j) => j.cancel(true));
export const jobComplete = verb('job-complete', 'complete a ready job (mirror, active commit: pivot)', (j) =>
  j.complete(),
);
export const jobFinalize = verb('job-finalize', 'finalize a pending job', (j) => j.finalize());
export const jobDismiss = verb('job-dismiss', 'remove a concluded job', (j) => j.dismiss());

/** query-jobs: QAPI JobInfo, newest job first. */
export const queryJobs: QmpCommand = {
  name: 'query-jobs',
  help: 'list the jobs',
  args: {},
  run(ctx) {
    return jobsOf(ctx.graph)
      .jobs()
      .map((j) => ({
        id: j.id,
        type: j.type,
        status: j.status,
        'current-progress': j.current,
        'total-progress': j.total,
        ...(j.error !== undefined && { error: j.error }),
      }));
  },
};
