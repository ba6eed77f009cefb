/**
 * `blockgraph nbd`: qemu-nbd over the graph. Serves one image (anything the other commands can
 * open: -f, --image-opts, json:, protocol filenames) as one NBD export on TCP (`-p`, `-b`) or a
 * Unix socket (`-k`), to at most `-e` clients at a time; without `-t` it exits when the last
 * client disconnects, as qemu-nbd does. Options and messages are qemu-nbd 7.2's; not
 * implemented (refused as invalid options): -c/-d (kernel device), -o, -A, -B, -s, -l, -L,
 * --fork, --tls-*, cache and aio modes.
 */
import { writeFileSync } from 'node:fs';
import type { NbdAddress } from '../nbd/address.ts';
import { listenNbd, type NbdListener } from '../nbd/listen.ts';
import { DEFAULT_PORT } from '../nbd/protocol.ts';
import { NbdServer } from '../nbd/server.ts';
import { BlockGraph } from '../graph/graph.ts';
import { getopt, glibcMessage, type LongOption } from './getopt.ts';
import { checkFormatOptions, openBackend, type ImageSpec } from './image-opts.ts';
import { addObjects } from './objects.ts';
import { CliExit, PROGRAM, report, runReporting, type CliIo } from './program.ts';

const LONG_OPTIONS: readonly LongOption[] = [
  { name: 'help', hasArg: false, key: 'h' },
  { name: 'port', hasArg: true, key: 'p' },
  { name: 'bind', hasArg: true, key: 'b' },
  { name: 'socket', hasArg: true, key: 'k' },
  { name: 'shared', hasArg: true, key: 'e' },
  { name: 'persistent', hasArg: false, key: 't' },
  { name: 'export-name', hasArg: true, key: 'x' },
  { name: 'description', hasArg: true, key: 'D' },
  { name: 'format', hasArg: true, key: 'f' },
  { name: 'read-only', hasArg: false, key: 'r' },
  { name: 'image-opts', hasArg: false },
  { name: 'object', hasArg: true },
  { name: 'pid-file', hasArg: true },
];

/** What `blockgraph nbd` serves, and where. */
export interface NbdServeOptions {
  readonly image: ImageSpec;
  readonly address: NbdAddress;
  readonly exportName: string;
  readonly description?: string;
  /** Clients served at once (-e). */
  readonly shared: number;
  readonly persistent: boolean;
  readonly objects?: readonly string[];
}

/** A running server: `finished` resolves after `close` or, without -t, the last client. */
export interface NbdServing {
  readonly port: number | undefined;
  readonly finished: Promise<void>;
  close(): Promise<void>;
}

/**
 * Opens the image behind a BlockBackend and serves it. Throws qemu-nbd's messages: "Failed to
 * blk_new_open 'X': ..." when the image does not open, and the bind failures of listen.ts.
 */
export async function serveImage(o: NbdServeOptions): Promise<NbdServing> {
  const graph = new BlockGraph(undefined, addObjects(o.objects ?? []));
  let opened;
  try {
    opened = await openBackend(graph, o.image, '');
  } catch (err) {
    throw new CliExit(`Failed to blk_new_open '${o.image.filename}': ${(err as Error).message}`);
  }
  const { blk } = opened;
  const server = new NbdServer();
  server.addExport({ name: o.exportName, description: o.description, writable: !o.image.readOnly, blk });
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  let listener: NbdListener | undefined;
  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      await listener?.close();
      server.closeAll();
      await server.idle();
      await blk.close();
      finish();
    })());
  const serve = async (ch: Parameters<NbdServer['serve']>[0]) => {
    await server.serve(ch);
    if (!o.persistent && server.active === 0) void close();
  };
  try {
    listener = await listenNbd(o.address, serve, o.shared);
  } catch (err) {
    await blk.close();
    throw err;
  }
  return { port: listener.port, finished, close };
}

export async function run(args: string[], io: CliIo): Promise<number> {
  const parsed = getopt(args, 'hp:b:k:e:tx:D:f:r', LONG_OPTIONS);
  if (parsed.error) {
    io.err(
      `${glibcMessage(PROGRAM, parsed.error)}\n${PROGRAM}: Try \`${PROGRAM} nbd --help' for more information.\n`,
    );
    return 1;
  }
  const last = (key: string) => parsed.opts.filter(([k]) => k === key).at(-1)?.[1];
  const all = (key: string) => parsed.opts.filter(([k]) => k === key).map(([, v]) => v);
  if (last('h') !== undefined) {
    io.out(USAGE);
    return 0;
  }
  return runReporting(io, async () => {
    if (parsed.operands.length !== 1) {
      report(io, 'Invalid number of arguments');
      io.err(`Try \`${PROGRAM} nbd --help' for more information.\n`);
      return 1;
    }
    const image: ImageSpec = {
      filename: parsed.operands[0]!,
      format: last('f'),
      imageOpts: last('image-opts') !== undefined,
      readOnly: last('r') !== undefined,
    };
    checkFormatOptions('io', image);
    const shared = sharedCount(last('e'));
    const socket = last('k');
    const address: NbdAddress =
      socket !== undefined
        ? { type: 'unix', path: socket }
        : { type: 'inet', host: last('b') ?? '0.0.0.0', port: last('p') ?? String(DEFAULT_PORT) };
    const serving = await serveImage({
      image,
      address,
      exportName: last('x') ?? '',
      description: last('D'),
      shared,
      persistent: last('t') !== undefined,
      objects: all('object'),
    });
    const pidFile = last('pid-file');
    if (pidFile !== undefined) writeFileSync(pidFile, `${process.pid}\n`);
    const stop = () => void serving.close();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    await serving.finished;
    process.off('SIGTERM', stop);
    process.off('SIGINT', stop);
    return 0;
  });
}

/** -e: a positive count (qemu-nbd's "Invalid shared device number 'X'"). */
function sharedCount(value: string | undefined): number {
  if (value === undefined) return 1;
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!(n >= 1)) throw new CliExit(`Invalid shared device number '${value}'`);
  return n;
}

const USAGE = `Usage: ${PROGRAM} nbd [OPTIONS] FILE
QEMU Disk Network Block Device Utility, over the block graph

  -h, --help                display this help and exit

Connection properties:
  -p, --port=PORT           port to listen on (default \`${DEFAULT_PORT}')
  -b, --bind=IFACE          interface to bind to (default \`0.0.0.0')
  -k, --socket=PATH         path to the unix socket
  -e, --shared=NUM          device can be shared by NUM clients (default '1')
  -t, --persistent          don't exit on the last connection
  -x, --export-name=NAME    expose export by name (default is empty string)
  -D, --description=TEXT    export a human-readable description

General purpose options:
  --object type,id=ID,...   define an object such as 'secret' for providing
                            passwords and/or encryption keys
  --pid-file=PATH           store the server's process ID in the given file

Block device options:
  -f, --format=FORMAT       set image format (raw, qcow2, ...)
  -r, --read-only           export read-only
      --image-opts          treat FILE as a full set of image options
`;
