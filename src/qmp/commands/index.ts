/** The QMP command table: one line per command; query-commands lists exactly this table. */
import { xBlockdevAmend } from './amend.ts';
import { changeBackingFile } from './backing.ts';
import { blockdevAdd, blockdevDel } from './block.ts';
import { blockdevCreate } from './create.ts';
import { qmpCapabilities, queryCommands, quit } from './control.ts';
import { xDebugQueryBlockGraph } from './debug.ts';
import { humanMonitorCommand } from './hmp.ts';
import {
  blockdevChangeMedium,
  blockdevCloseTray,
  blockdevInsertMedium,
  blockdevOpenTray,
  blockdevRemoveMedium,
  eject,
} from './media.ts';
import { blockResize } from './resize.ts';
import { queryBlock, queryBlockstats, queryNamedBlockNodes } from './query.ts';
import { cont, queryStatus, stop } from './runstate.ts';
import { blockdevSnapshotDeleteInternalSync, blockdevSnapshotInternalSync } from './snapshot.ts';
import { snapshotDelete, snapshotLoad, snapshotSave } from './snapshot-vm.ts';
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
  ].map((c) => [c.name, c]),
);
