/**
 * blockdev-backup (qapi/block-core.json; blockdev.c do_backup_common, block/backup.c
 * backup_job_create): the argument checks in QEMU's order, with its texts, then the job.
 */
import { BitmapCheck } from '../../bitmaps/dirty-bitmap.ts';
import { findBitmap } from '../../bitmaps/node-bitmaps.ts';
import { genericError } from '../../block/errors.ts';
import { BackupJob, type BackupSync, type BitmapMode } from '../../jobs/backup.ts';
import type { OnError } from '../../jobs/block-job.ts';
import { jobsOf } from '../../jobs/registry.ts';
import {
  blockJobArgs,
  checkNotBlocked,
  COMMON_JOB_ARGS,
  jobOptions,
  ON_ERROR_ARG,
  SYNC_ARG,
} from './job-args.ts';
import { lookupNode } from './lookup.ts';
import { NOTHING, type QmpCommand } from './types.ts';

export const blockdevBackup: QmpCommand = {
  name: 'blockdev-backup',
  help: 'copy a node as it is now to the target node while the guest keeps writing (copy-before-write)',
  args: {
    ...blockJobArgs({
      device: { type: 'str', help: 'the drive or node backed up' },
      target: { type: 'str', help: 'the node written' },
      sync: { type: SYNC_ARG, help: 'full|top|none|bitmap|incremental' },
      bitmap: { type: 'str', optional: true, help: 'dirty bitmap of the device: what sync=bitmap copies' },
      'bitmap-mode': {
        type: { enum: ['on-success', 'never', 'always'] },
        optional: true,
        help: 'what becomes of the bitmap: cleared on success, never, or always',
      },
      compress: { type: 'bool', optional: true, help: 'write compressed clusters (not supported)' },
      speed: COMMON_JOB_ARGS.speed,
      'on-source-error': ON_ERROR_ARG,
      'on-target-error': ON_ERROR_ARG,
    }),
    'filter-node-name': { type: 'str', optional: true, help: 'node-name of the copy-before-write filter' },
  },
  async run(ctx, args) {
    const graph = ctx.graph;
    const device = args.device as string;
    const source = lookupNode(graph, device, device);
    const target = lookupNode(graph, args.target as string, args.target as string);
    const { sync, bitmapMode } = syncModes(args);
    const bitmap = args.bitmap === undefined ? undefined : findBitmap(source, args.bitmap as string);
    if (args.bitmap !== undefined) {
      if (!bitmap) throw genericError(`Bitmap '${args.bitmap as string}' could not be found`);
      checkBitmapModes(sync, bitmapMode);
      bitmap.check(BitmapCheck.ALLOW_RO);
    } else if (args['bitmap-mode'] !== undefined) {
      throw genericError('Cannot specify bitmap sync mode without a bitmap');
    }
    if (args.compress === true) throw genericError('Compression is not supported for this drive');
    const opts = jobOptions(graph, args, device);
    // backup_job_create.
    if (source === target) throw genericError('Source and target cannot be the same');
    if (sync === 'bitmap' && !bitmap) {
      throw genericError(`must provide a valid bitmap name for '${args.sync as string}' sync mode`);
    }
    if (source.length() !== target.length())
      throw genericError('Source and target image have different sizes');
    checkNotBlocked(graph, [source, target]);
    const registry = jobsOf(graph);
    const job = new BackupJob(registry, {
      ...opts,
      source,
      target,
      sync,
      bitmap,
      bitmapMode,
      filterNodeName: args['filter-node-name'] as string | undefined,
      onSourceError: args['on-source-error'] as OnError | undefined,
      onTargetError: args['on-target-error'] as OnError | undefined,
    });
    await job.insertFilter();
    registry.block(job, [source, target]);
    registry.add(job);
    return NOTHING;
  },
};

/** `incremental` is `bitmap` with on-success (and only that). */
function syncModes(args: Record<string, unknown>): { sync: BackupSync; bitmapMode?: BitmapMode } {
  const mode = args['bitmap-mode'] as BitmapMode | undefined;
  if (args.sync !== 'incremental') return { sync: args.sync as BackupSync, bitmapMode: mode };
  if (mode !== undefined && mode !== 'on-success') {
    throw genericError("Bitmap sync mode must be 'on-success' when using sync mode 'incremental'");
  }
  return { sync: 'bitmap', bitmapMode: 'on-success' };
}

/** do_backup_common's checks of a bitmap against the sync mode. */
function checkBitmapModes(sync: BackupSync, mode: BitmapMode | undefined): void {
  if (mode === undefined && sync === 'bitmap') {
    throw genericError('Bitmap sync mode must be given when providing a bitmap');
  }
  if (sync === 'none') throw genericError("sync mode 'none' does not produce meaningful bitmap outputs");
  if (mode === 'never' && sync !== 'bitmap') {
    throw genericError(
      `Bitmap sync mode 'never' has no meaningful effect when combined with sync mode '${sync}'`,
    );
  }
}
