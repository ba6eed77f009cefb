/** The QMP command table: one line per command; query-commands lists exactly this table. */
import { blockdevAdd, blockdevDel } from './block.ts';
import { blockdevCreate } from './create.ts';
import { qmpCapabilities, queryCommands, quit } from './control.ts';
import { xDebugQueryBlockGraph } from './debug.ts';
import { blockResize } from './resize.ts';
import { queryBlock, queryBlockstats, queryNamedBlockNodes } from './query.ts';
import { cont, queryStatus, stop } from './runstate.ts';
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
    queryNamedBlockNodes,
    queryBlock,
    queryBlockstats,
    xDebugQueryBlockGraph,
    stop,
    cont,
    queryStatus,
  ].map((c) => [c.name, c]),
);
