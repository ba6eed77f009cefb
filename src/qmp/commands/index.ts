/** The QMP command table: one line per command; query-commands lists exactly this table. */
import { xBlockdevAmend } from './amend.ts';
import { changeBackingFile } from './backing.ts';
import { blockdevAdd, blockdevDel } from './block.ts';
import { blockCommit } from './block-commit.ts';
import {
  blockJobCancel,
  blockJobComplete,
  blockJobDismiss,
  blockJobFinalize,
  blockJobPause,
  blockJobResume,
  blockJobSetSpeed,
  queryBlockJobs,
} from './block-jobs.ts';
import { blockStream } from './block-stream.ts';
import { blockdevMirror } from './blockdev-mirror.ts';
import { blockdevBackup } from './blockdev-backup.ts';
import { blockdevCreate } from './create.ts';
import { qmpCapabilities, queryCommands, quit } from './control.ts';
import { xDebugQueryBlockGraph } from './debug.ts';
import {
  blockDirtyBitmapAdd,
  blockDirtyBitmapClear,
  blockDirtyBitmapDisable,
  blockDirtyBitmapEnable,
  blockDirtyBitmapMerge,
  blockDirtyBitmapRemove,
} from './dirty-bitmap.ts';
import { humanMonitorCommand } from './hmp.ts';
import { jobCancel, jobComplete, jobDismiss, jobFinalize, jobPause, jobResume, queryJobs } from './jobs.ts';
import {
  blockdevChangeMedium,
  blockdevCloseTray,
  blockdevInsertMedium,
  blockdevOpenTray,
  blockdevRemoveMedium,
  eject,
} from './media.ts';
import { objectAdd, objectDel, qomGet, qomList, qomSet } from './objects.ts';
import { blockdevReopen, xBlockdevReplace } from './reopen.ts';
import { blockExportAdd, blockExportDel, nbdServerStart, nbdServerStop, queryBlockExports } from './nbd.ts';
import { blockResize } from './resize.ts';
import { queryBlock, queryBlockstats, queryNamedBlockNodes } from './query.ts';
import { cont, queryStatus, stop } from './runstate.ts';
import { blockdevSnapshotDeleteInternalSync, blockdevSnapshotInternalSync } from './snapshot.ts';
import { internalSnapshotAction } from './snapshot-internal-action.ts';
import { snapshotDelete, snapshotLoad, snapshotSave } from './snapshot-vm.ts';
import { blockdevSnapshotAction, blockdevSnapshotSyncAction } from './snapshot-external.ts';
import { abortAction, actionCommand, transaction } from './transaction.ts';
import { blockSetIoThrottle } from './throttle.ts';
import type { QmpCommand } from './types.ts';

export const COMMANDS: ReadonlyMap<string, QmpCommand> = new Map(
  [
    qmpCapabilities,
    queryCommands(() => COMMANDS.values()),
    quit,
    blockdevAdd,
    blockdevDel,
    blockdevCreate,
    blockResize,
    blockdevSnapshotInternalSync,
    blockdevSnapshotDeleteInternalSync,
    actionCommand(blockdevSnapshotAction),
    actionCommand(blockdevSnapshotSyncAction),
    transaction([blockdevSnapshotAction, blockdevSnapshotSyncAction, internalSnapshotAction, abortAction]),
    blockdevReopen,
    xBlockdevReplace,
    changeBackingFile,
    xBlockdevAmend,
    queryNamedBlockNodes,
    queryBlock,
    queryBlockstats,
    xDebugQueryBlockGraph,
    stop,
    cont,
    queryStatus,
    snapshotSave,
    snapshotLoad,
    snapshotDelete,
    humanMonitorCommand,
    blockdevOpenTray,
    blockdevCloseTray,
    blockdevRemoveMedium,
    blockdevInsertMedium,
    blockdevChangeMedium,
    eject,
    nbdServerStart,
    nbdServerStop,
    blockExportAdd,
    blockExportDel,
    queryBlockExports,
    objectAdd,
    objectDel,
    qomList,
    qomGet,
    qomSet,
    blockSetIoThrottle,
    queryJobs,
    jobPause,
    jobResume,
    jobCancel,
    jobComplete,
    jobFinalize,
    jobDismiss,
    queryBlockJobs,
    blockJobSetSpeed,
    blockJobPause,
    blockJobResume,
    blockJobCancel,
    blockJobComplete,
    blockJobFinalize,
    blockJobDismiss,
    blockStream,
    blockCommit,
    blockdevMirror,
    blockDirtyBitmapAdd,
    blockDirtyBitmapRemove,
    blockDirtyBitmapClear,
    blockDirtyBitmapEnable,
    blockDirtyBitmapDisable,
    blockDirtyBitmapMerge,
    blockdevBackup,
  ].map((c) => [c.name, c]),
);
