/**
 * The daemon's NBD server and its block exports (QEMU blockdev-nbd.c and block/export/export.c):
 * one server per graph, started by nbd-server-start / --nbd-server, and exports of graph nodes
 * by id, added and removed by block-export-add/del / --export. Each export is a BlockBackend over
 * its node that shares every permission (as QEMU's blk_exp_add does), so a running guest's drive
 * and an export can use one node. Texts are QEMU 7.2's.
 */
import { BlockBackend } from '../block/backend.ts';
import { genericError } from '../block/errors.ts';
import type { BlockGraph } from '../graph/graph.ts';
import type { NbdAddress } from './address.ts';
import type { NbdListener } from './listen.ts';
import { NbdServer } from './server.ts';

interface BlockExport {
  readonly id: string;
  readonly nodeName: string;
  readonly name: string;
  readonly blk: BlockBackend;
}

interface NbdState {
  readonly server: NbdServer;
  readonly listener: NbdListener;
}

/** BlockExportOptions for type=nbd, checked (QAPI's part is done by the caller). */
export interface NbdExportArgs {
  readonly id: string;
  readonly nodeName: string;
  readonly name?: string;
  readonly description?: string;
  readonly writable: boolean;
}

const servers = new WeakMap<BlockGraph, NbdState>();
/** Exports by id, newest last (query-block-exports lists them newest first). */
const exportsOf = new WeakMap<BlockGraph, Map<string, BlockExport>>();

function exportsIn(graph: BlockGraph): Map<string, BlockExport> {
  let map = exportsOf.get(graph);
  if (!map) exportsOf.set(graph, (map = new Map()));
  return map;
}

/** nbd-server-start. Returns the bound TCP port (for port 0), if any. */
export async function nbdServerStart(
  graph: BlockGraph,
  addr: NbdAddress,
  maxConnections = 0,
): Promise<number | undefined> {
  if (servers.has(graph)) throw genericError('NBD server already running');
  const server = new NbdServer();
  // Node's sockets, loaded on use: the command table also runs in the browser worker.
  const { listenNbd } = await import('./listen.ts');
  const listener = await listenNbd(addr, (ch) => server.serve(ch), maxConnections || Infinity);
  servers.set(graph, { server, listener });
  return listener.port;
}

/** nbd-server-stop: every NBD export goes (BLOCK_EXPORT_DELETED each), clients are dropped. */
export async function nbdServerStop(graph: BlockGraph): Promise<void> {
  const state = servers.get(graph);
  if (!state) throw genericError('NBD server not running');
  for (const id of [...exportsIn(graph).keys()]) await removeExport(graph, id, true);
  servers.delete(graph);
  await state.listener.close();
  state.server.closeAll();
}

/** block-export-add with type=nbd, in blk_exp_add's order of checks. */
export function blockExportAdd(graph: BlockGraph, args: NbdExportArgs): void {
  const exports = exportsIn(graph);
  if (exports.has(args.id)) throw genericError(`Block export id '${args.id}' is already in use`);
  // bdrv_lookup_bs(NULL, node-name): QEMU names an empty device here.
  const node = graph.nodes.get(args.nodeName);
  if (!node) throw genericError(`Cannot find device='' nor node-name='${args.nodeName}'`);
  const state = servers.get(graph);
  if (!state) throw genericError('NBD server not running');
  const name = args.name ?? args.nodeName;
  if (state.server.hasExport(name)) throw genericError(`NBD server already has export named '${name}'`);
  const blk = new BlockBackend(graph, '', { readOnly: !args.writable, shareRw: true });
  try {
    blk.insert(node);
  } catch (err) {
    void blk.close();
    throw err;
  }
  state.server.addExport({ name, description: args.description, writable: args.writable, blk });
  exports.set(args.id, { id: args.id, nodeName: node.nodeName, name, blk });
}

/** block-export-del: `safe` refuses while clients are connected; `hard` disconnects them. */
export async function blockExportDel(graph: BlockGraph, id: string, mode: 'safe' | 'hard'): Promise<void> {
  const exp = exportsIn(graph).get(id);
  if (!exp) throw genericError(`Export '${id}' is not found`);
  if (mode === 'safe' && (servers.get(graph)?.server.clientsOf(exp.name) ?? 0) > 0) {
    // QMP shows no hints; QEMU's adds "Use mode='hard' to force client disconnect" on the CLI.
    throw genericError(`export '${id}' still in use`);
  }
  await removeExport(graph, id, mode === 'hard');
}

async function removeExport(graph: BlockGraph, id: string, hard: boolean): Promise<void> {
  const exports = exportsIn(graph);
  const exp = exports.get(id)!;
  exports.delete(id);
  servers.get(graph)?.server.removeExport(exp.name, hard);
  await exp.blk.close();
  graph.emit('BLOCK_EXPORT_DELETED', { id });
}

/** query-block-exports: BlockExportInfo of each export, newest first, as QEMU lists them. */
export function queryBlockExports(graph: BlockGraph): Record<string, unknown>[] {
  return [...exportsIn(graph).values()]
    .reverse()
    .map((e) => ({ id: e.id, type: 'nbd', 'node-name': e.nodeName, 'shutting-down': false }));
}

/** Stops the server and removes the exports when the daemon exits. */
export async function shutdownNbd(graph: BlockGraph): Promise<void> {
  if (servers.has(graph)) await nbdServerStop(graph);
}
