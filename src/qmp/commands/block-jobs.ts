/**
 * The block job commands (qapi/block-core.json): query-block-jobs and block-job-set-speed,
 * -pause, -resume, -cancel, -complete, -finalize, -dismiss. They find the job by its `device`
 * (the job id) with class DeviceNotActive, where the job-* commands say "Job not found".
 */
import { checkVerb } from '../../jobs/status.ts';
import { BlockJob } from '../../jobs/block-job.ts';
import { jobsOf } from '../../jobs/registry.ts';
import type { ArgsSchema } from '../args.ts';
import type { QmpCommand, QmpContext } from './types.ts';
import { NOTHING } from './types.ts';

function blockJob(ctx: QmpContext, id: string): BlockJob {
  return jobsOf(ctx.graph).findBlockJob(id) as BlockJob;
}

function verb(
  name: string,
  help: string,
  key: 'device' | 'id',
  act: (job: BlockJob, args: Record<string, unknown>) => unknown,
  extra: ArgsSchema = {},
): QmpCommand {
  return {
    name,
    help,
    args: { [key]: { type: 'str', help: 'the job id' }, ...extra },
    async run(ctx, args) {
      await act(blockJob(ctx, args[key] as string), args);
      return NOTHING;
    },
  };
}

export const blockJobPause = verb('block-job-pause', 'pause a block job', 'device', (j) => j.userPause());
export const blockJobResume = verb('block-job-resume', 'resume a paused block job', 'device', (j) =>
  j.userResume(),
);
export const blockJobCancel = verb(
  'block-job-cancel',
  'cancel a block job (a ready mirror without force completes without pivoting)',
  'device',
  (j, args) => j.cancel(args.force === true),
  { force: { type: 'bool', optional: true, help: 'cancel even a ready mirror' } },
);
export const blockJobComplete = verb('block-job-complete', 'complete a ready block job', 'device', (j) =>
  j.complete(),
);
export const blockJobFinalize = verb('block-job-finalize', 'finalize a pending block job', 'id', (j) =>
  j.finalize(),
);
export const blockJobDismiss = verb('block-job-dismiss', 'remove a concluded block job', 'id', (j) =>
  j.dismiss(),
);
export const blockJobSetSpeed = verb(
  'block-job-set-speed',
  'change a block job’s speed limit (bytes/s, 0: unlimited)',
  'device',
  (j, args) => {
    checkVerb(j.id, j.status, 'set-speed');
    j.setSpeed(args.speed as number);
  },
  { speed: { type: 'int', help: 'bytes per second' } },
);

/** query-block-jobs: QAPI BlockJobInfo of every block job, newest first. */
export const queryBlockJobs: QmpCommand = {
  name: 'query-block-jobs',
  help: 'list the block jobs',
  args: {},
  run(ctx) {
    return jobsOf(ctx.graph)
      .jobs()
      .filter((j): j is BlockJob => j instanceof BlockJob)
      .map((j) => j.info());
  },
};
