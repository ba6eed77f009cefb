/**
 * nbd (QEMU block/nbd.c): an export of an NBD server as a protocol node. Options as QEMU 7.2's
 * BlockdevOptionsNbd plus the legacy `host`/`port`/`path`; filenames `nbd:host:port[:exportname=e]`,
 * `nbd:unix:path`, `nbd://host:port/e`, `nbd+unix:///e?socket=path` (config/filename.ts).
 *
 * The connection (src/nbd/) negotiates structured replies, `base:allocation` and NBD_OPT_GO with
 * NBD_INFO_BLOCK_SIZE; requests run concurrently; a dropped connection comes back as
 * `reconnect-delay` says (nbd/reconnect.ts). Transports: TCP and Unix sockets in Node; in a
 * browser, `server.type=websocket` with a `url` (blockgraph's addition to SocketAddress) reaches
 * a server through a WebSocket bridge (`blockgraph nbd-bridge`). TLS is refused.
 */
import type { BlockDriver, BlockDriverOps, OpenContext } from '../../block/driver.ts';
import { genericError } from '../../block/errors.ts';
import { parseNbdFilename } from '../../config/filename.ts';
import type { NbdAddress } from '../../nbd/address.ts';
import type { Channel } from '../../nbd/channel.ts';
import { NbdClientSession } from '../../nbd/client.ts';
import { negotiate } from '../../nbd/client-handshake.ts';
import { TFlag } from '../../nbd/protocol.ts';
import { ReconnectingClient } from '../../nbd/reconnect.ts';
import { withDefaults } from '../options.ts';

const SERVER_FIELDS = {
  type: { type: 'enum', values: ['inet', 'unix', 'vsock', 'fd', 'websocket'], help: 'address type' },
  host: { type: 'str', help: 'inet: host name or address' },
  port: { type: 'str', help: 'inet: port number or service name' },
  numeric: { type: 'bool', help: 'inet: host and port are numeric (accepted)' },
  to: { type: 'int', help: 'inet: highest port to try (accepted)' },
  ipv4: { type: 'bool', help: 'inet: use IPv4 (accepted)' },
  ipv6: { type: 'bool', help: 'inet: use IPv6 (accepted)' },
  'keep-alive': { type: 'bool', help: 'inet: TCP keep-alive (accepted)' },
  path: { type: 'str', help: 'unix: socket path' },
  url: { type: 'str', help: 'websocket: ws:// or wss:// URL of a WebSocket bridge to the server' },
} as const;

const OPTIONS = {
  server: { type: 'object', fields: SERVER_FIELDS, help: 'NBD server address' },
  export: { type: 'str', help: 'export name' },
  'tls-creds': { type: 'str', help: 'TLS credentials (not supported)' },
  'tls-hostname': { type: 'str', help: 'TLS host name (not supported)' },
  'x-dirty-bitmap': {
    type: 'str',
    help: 'metadata context to read instead of base:allocation (not supported)',
  },
  'reconnect-delay': {
    type: 'int',
    min: 0,
    max: 2 ** 32 - 1,
    default: 0,
    help: 'seconds requests wait for a dropped connection to come back',
  },
  'open-timeout': {
    type: 'int',
    min: 0,
    max: 2 ** 32 - 1,
    help: 'seconds to retry the first connection (accepted)',
  },
  host: { type: 'str', help: 'legacy: server host (use server.host)' },
  port: { type: 'str', help: 'legacy: server port (use server.port)' },
  path: { type: 'str', help: 'legacy: server socket path (use server.path)' },
} as const;

/** The server address from `server` or the legacy options (nbd_process_legacy_socket_options). */
function addressOf(opts: Readonly<Record<string, unknown>>): NbdAddress {
  const { host, port, path } = opts as Record<string, string | undefined>;
  const legacy = host !== undefined || port !== undefined || path !== undefined;
  const server = opts.server as Record<string, unknown> | undefined;
  if (server && legacy) throw genericError("Cannot use 'server' and path/host/port at the same time");
  if (server) return serverAddress(server);
  if (!legacy) throw genericError('NBD server address missing');
  if (path !== undefined) {
    if (host !== undefined) throw genericError('path and host may not be used at the same time');
    if (port !== undefined) throw genericError('port may not be used without host');
    return { type: 'unix', path };
  }
  return { type: 'inet', host: host ?? '', port: port ?? '10809' };
}

function serverAddress(server: Record<string, unknown>): NbdAddress {
  const need = (key: string): string => {
    const v = server[key];
    if (typeof v !== 'string') throw genericError(`Parameter '${key}' is missing`);
    return v;
  };
  switch (server.type) {
    case 'inet':
      return { type: 'inet', host: need('host'), port: need('port') };
    case 'unix':
      return { type: 'unix', path: need('path') };
    case 'websocket':
      return { type: 'websocket', url: need('url') };
    case undefined:
      throw genericError("Parameter 'type' is missing");
    default:
      throw genericError(`NBD server address type '${String(server.type)}' is not supported`);
  }
}

/** Opens a transport to `addr`: Node sockets are loaded only when used (not in browsers). */
async function transport(addr: NbdAddress): Promise<Channel> {
  if (addr.type === 'websocket') return (await import('../../nbd/websocket.ts')).connectWebSocket(addr.url);
  return (await import('../../nbd/node-socket.ts')).connectSocket(addr);
}

/** Connects and negotiates one session; a refused handshake closes the connection. */
export async function connectNbd(addr: NbdAddress, exportName: string): Promise<NbdClientSession> {
  const ch = await transport(addr);
  try {
    return new NbdClientSession(ch, await negotiate(ch, exportName));
  } catch (err) {
    ch.close();
    throw err;
  }
}

function checkUnsupported(opts: Readonly<Record<string, unknown>>): void {
  if (opts['tls-creds'] !== undefined || opts['tls-hostname'] !== undefined) {
    throw genericError("blockgraph's NBD client does not support TLS: remove 'tls-creds' and 'tls-hostname'");
  }
  if (opts['x-dirty-bitmap'] !== undefined) {
    throw genericError("blockgraph's NBD client does not support 'x-dirty-bitmap'");
  }
}

async function open(ctx: OpenContext): Promise<BlockDriverOps> {
  const opts = withDefaults(OPTIONS, ctx.options);
  const addr = addressOf(opts);
  checkUnsupported(opts);
  const exportName = (opts.export as string | undefined) ?? '';
  const first = await connectNbd(addr, exportName);
  const { info } = first;
  let readOnly = false;
  if (info.flags & TFlag.READ_ONLY && !ctx.readOnly) {
    // bdrv_apply_auto_read_only
    if (opts['auto-read-only'] !== true) {
      first.disconnect();
      throw genericError('NBD export is read-only');
    }
    readOnly = true;
  }
  const conn = new ReconnectingClient(
    () => connectNbd(addr, exportName),
    first,
    (opts['reconnect-delay'] as number) * 1000,
  );
  const has = (flag: number) => (info.flags & flag) !== 0;
  return {
    readOnly,
    requestAlignment: Math.max(1, info.minBlock),
    length: () => info.size,
    filename: () => filenameOf(addr, exportName),
    read: (offset, dst) => conn.run((s) => s.read(offset, dst)),
    write: (offset, src, flags) => conn.run((s) => s.write(offset, src, flags.fua === true)),
    ...(has(TFlag.SEND_WRITE_ZEROES) && {
      writeZeroes: (offset, bytes, z) => conn.run((s) => s.writeZeroes(offset, bytes, z.unmap === true)),
    }),
    ...(has(TFlag.SEND_TRIM) && { discard: (offset, bytes) => conn.run((s) => s.trim(offset, bytes)) }),
    ...(has(TFlag.SEND_FLUSH) && { flush: () => conn.run((s) => s.flush()) }),
    ...(info.allocationContext !== undefined && {
      // nbd_client_co_block_status: a protocol's bytes are where they are (OFFSET_VALID).
      blockStatus: async (offset, bytes) => {
        const e = await conn.run((s) => s.blockStatus(offset, bytes));
        return { bytes: e.length, data: !e.hole, zero: e.zero, allocated: true, depth: 0, offset };
      },
    }),
    close: async () => conn.close(),
  };
}

/** The URI QEMU shows for the node (nbd_refresh_filename). */
function filenameOf(addr: NbdAddress, exportName: string): string {
  const path = exportName ? `/${exportName}` : '';
  if (addr.type === 'unix') return `nbd+unix://${path}?socket=${addr.path}`;
  if (addr.type === 'websocket') return addr.url;
  return `nbd://${addr.host}:${addr.port}${path}`;
}

export const nbdDriver = {
  name: 'nbd',
  kind: 'protocol',
  options: OPTIONS,
  capabilities: { writable: true, persistent: true, growable: false, discard: true, writeZeroes: true },
  protocols: ['nbd', 'nbd+tcp', 'nbd+unix'],
  parseFilename: (filename) => {
    const { driver: _driver, ...rest } = parseNbdFilename(filename);
    return rest;
  },
  open,
} as const satisfies BlockDriver;
