/**
 * NBD server and block export commands (qapi/block-export.json): nbd-server-start,
 * nbd-server-stop, block-export-add, block-export-del, query-block-exports. The work is in
 * src/nbd/block-export.ts; here the arguments are checked in QAPI's words.
 */
import { genericError } from '../../block/errors.ts';
import type { NbdAddress } from '../../nbd/address.ts';
import {
  blockExportAdd as addExport,
  blockExportDel as delExport,
  nbdServerStart as startServer,
  nbdServerStop as stopServer,
  queryBlockExports as listExports,
} from '../../nbd/block-export.ts';
import { checkArgs, type ArgsSchema } from '../args.ts';
import { NOTHING, type QmpCommand } from './types.ts';

const INET: ArgsSchema = {
  host: { type: 'str', help: 'host name or address' },
  port: { type: 'str', help: 'port or service name' },
  numeric: { type: 'bool', optional: true, help: 'accepted' },
  to: { type: 'int', optional: true, help: 'accepted' },
  ipv4: { type: 'bool', optional: true, help: 'accepted' },
  ipv6: { type: 'bool', optional: true, help: 'accepted' },
  'keep-alive': { type: 'bool', optional: true, help: 'accepted' },
};
const UNIX: ArgsSchema = {
  path: { type: 'str', help: 'socket path' },
  abstract: { type: 'bool', optional: true, help: 'accepted' },
  tight: { type: 'bool', optional: true, help: 'accepted' },
};

/**
 * A SocketAddress (flat: `{type, host, port}`, as --nbd-server's `addr`) or, with `legacy`,
 * a SocketAddressLegacy (`{type, data: {...}}`, as nbd-server-start's `addr`).
 */
export function socketAddress(value: unknown, legacy: boolean, path = 'addr'): NbdAddress {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw genericError(`Invalid parameter type for '${path}', expected: object`);
  }
  const { type, ...rest } = value as Record<string, unknown>;
  if (type === undefined) throw genericError(`Parameter '${path}.type' is missing`);
  if (type !== 'inet' && type !== 'unix') {
    if (['vsock', 'fd'].includes(String(type)))
      throw genericError(`NBD over '${String(type)}' sockets is not supported`);
    throw genericError(`Parameter '${path}.type' does not accept value '${String(type)}'`);
  }
  let members = rest;
  if (legacy) {
    const { data, ...extra } = rest;
    checkArgs({}, extra);
    if (typeof data !== 'object' || data === null) throw genericError(`Parameter '${path}.data' is missing`);
    members = data as Record<string, unknown>;
  }
  const schema = type === 'inet' ? INET : UNIX;
  const where = legacy ? `${path}.data.` : `${path}.`;
  const lacking = Object.keys(schema).find((k) => !schema[k]!.optional && !Object.hasOwn(members, k));
  if (lacking !== undefined) throw genericError(`Parameter '${where}${lacking}' is missing`);
  const a = checkArgs(schema, members);
  return type === 'inet'
    ? { type, host: a.host as string, port: a.port as string }
    : { type, path: a.path as string };
}

/** TLS is not implemented: refused plainly rather than served in the clear. */
function refuseTls(args: Record<string, unknown>): void {
  if (args['tls-creds'] !== undefined || args['tls-authz'] !== undefined) {
    throw genericError("blockgraph's NBD server does not support TLS");
  }
}

export const nbdServerStart: QmpCommand = {
  name: 'nbd-server-start',
  help: 'start the NBD server on a socket address',
  args: 'boxed',
  async run(ctx, args) {
    const { addr, ...rest } = args;
    checkArgs(
      {
        'tls-creds': { type: 'str', optional: true, help: 'TLS credentials (not supported)' },
        'tls-authz': { type: 'str', optional: true, help: 'TLS authorization (not supported)' },
        'max-connections': { type: 'int', optional: true, help: 'clients at once (0: no limit)' },
      },
      rest,
    );
    if (addr === undefined) throw genericError("Parameter 'addr' is missing");
    const address = socketAddress(addr, true);
    refuseTls(rest);
    await startServer(ctx.graph, address, (rest['max-connections'] as number | undefined) ?? 0);
    return NOTHING;
  },
};

export const nbdServerStop: QmpCommand = {
  name: 'nbd-server-stop',
  help: 'stop the NBD server and remove its exports',
  args: {},
  async run(ctx) {
    await stopServer(ctx.graph);
    return NOTHING;
  },
};

const EXPORT_ARGS: ArgsSchema = {
  type: { type: { enum: ['nbd', 'vhost-user-blk', 'fuse', 'vduse-blk'] }, help: 'export type' },
  id: { type: 'str', help: 'export id' },
  'fixed-iothread': { type: 'bool', optional: true, help: 'accepted' },
  iothread: { type: 'str', optional: true, help: 'accepted' },
  'node-name': { type: 'str', help: 'the node to export' },
  writable: { type: 'bool', optional: true, help: 'clients may write' },
  writethrough: { type: 'bool', optional: true, help: 'accepted' },
  name: { type: 'str', optional: true, help: 'NBD export name (default: the node-name)' },
  description: { type: 'str', optional: true, help: 'NBD export description' },
  bitmaps: { type: { list: 'str' }, optional: true, help: 'dirty bitmaps (not supported)' },
  'allocation-depth': { type: 'bool', optional: true, help: 'qemu:allocation-depth (not supported)' },
};

/** BlockExportOptions, checked as QAPI does, and exported. Shared with --export. */
export function exportFromOptions(
  graph: Parameters<typeof addExport>[0],
  args: Record<string, unknown>,
): void {
  const a = checkArgs(EXPORT_ARGS, args);
  if (a.type !== 'nbd') throw genericError(`Export type '${String(a.type)}' is not supported`);
  if ((a.bitmaps as unknown[] | undefined)?.length || a['allocation-depth'] === true) {
    throw genericError("blockgraph's NBD server does not export dirty bitmaps or allocation depth");
  }
  addExport(graph, {
    id: a.id as string,
    nodeName: a['node-name'] as string,
    name: a.name as string | undefined,
    description: a.description as string | undefined,
    writable: a.writable === true,
  });
}

export const blockExportAdd: QmpCommand = {
  name: 'block-export-add',
  help: 'export a node (type nbd)',
  args: 'boxed',
  run(ctx, args) {
    exportFromOptions(ctx.graph, args);
    return NOTHING;
  },
};

export const blockExportDel: QmpCommand = {
  name: 'block-export-del',
  help: 'remove an export (mode safe: refused while clients are connected; hard: drop them)',
  args: {
    id: { type: 'str', help: 'export id' },
    mode: { type: { enum: ['safe', 'hard'] }, optional: true, help: 'safe (default) or hard' },
  },
  async run(ctx, args) {
    await delExport(ctx.graph, args.id as string, (args.mode as 'safe' | 'hard' | undefined) ?? 'safe');
    return NOTHING;
  },
};

export const queryBlockExports: QmpCommand = {
  name: 'query-block-exports',
  help: 'list the block exports',
  args: {},
  run: (ctx) => listExports(ctx.graph),
};
