/**
 * `blockgraph daemon`: qemu-storage-daemon's command line over the graph. Options are processed
 * in command-line order, as qemu-storage-daemon does, so a --monitor names a --chardev given
 * before it and a --blockdev may refer to nodes added before it:
 *   --chardev stdio,id=ID              QMP on standard input and output
 *   --chardev socket,id=ID,path=P,server=on,wait=off   QMP on a Unix socket (clients in turn)
 *   --monitor [chardev=]ID[,mode=control][,pretty=on|off]   QMP on that chardev
 *   --blockdev <keyval or JSON>        blockdev-add at start-up
 *   --object secret|throttle-group,...  objects (secrets, throttle groups), as object-add
 *   --nbd-server addr.type=inet,addr.host=H,addr.port=P | addr.type=unix,addr.path=P
 *   --export [type=]nbd,id=ID,node-name=N[,name=E][,writable=on|off]   as block-export-add
 * Errors are qemu-storage-daemon's: "--monitor chardev=m1: chardev "m1" not found".
 * Unlike qemu-storage-daemon, the daemon exits when its stdio monitor reaches end of input.
 */
import { rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { genericError, QmpError } from '../block/errors.ts';
import { BOOL_WORDS } from '../config/validate.ts';
import { parseBlockdev } from '../config/blockdev.ts';
import { parseKeyval } from '../config/keyval.ts';
import { parseQemuOpts } from '../config/qemu-opts.ts';
import { BlockGraph } from '../graph/graph.ts';
import { nbdServerStart, shutdownNbd } from '../nbd/block-export.ts';
import { addRootNode } from '../qmp/commands/block.ts';
import { exportFromOptions, socketAddress } from '../qmp/commands/nbd.ts';
import { QmpMonitor } from '../qmp/monitor.ts';
import { addObjects } from './objects.ts';
import { glibcMessage, getopt } from './getopt.ts';
import { CliExit, PROGRAM, runReporting, type CliIo, type CommandRun } from './program.ts';

const LONG_OPTIONS = ['blockdev', 'chardev', 'monitor', 'object', 'nbd-server', 'export'].map((name) => ({
  name,
  hasArg: true,
}));

/** Parameters QEMU's chardev options accept for stdio and (Unix) sockets (qemu_chardev_opts). */
const STDIO_PARAMS = new Set(['backend', 'id', 'signal', 'logfile', 'logappend', 'mux']);
const SOCKET_PARAMS = new Set(['backend', 'id', 'path', 'server', 'wait', 'logfile', 'logappend', 'mux']);

/** A character device: standard input/output, or a listening Unix socket. */
type Chardev = { readonly kind: 'stdio' } | { readonly kind: 'socket'; readonly path: string };

interface Monitor {
  chardev: string;
  pretty: boolean;
}

export const run: CommandRun = (args, io) =>
  runReporting(io, async () => {
    const parsed = getopt(args, 'h', LONG_OPTIONS);
    if (parsed.error) throw new CliExit(glibcMessage(PROGRAM, parsed.error).slice(PROGRAM.length + 2));
    if (parsed.operands.length > 0) throw new CliExit(`${parsed.operands[0]}: Unexpected argument`);
    if (parsed.opts.some(([key]) => key === 'h')) {
      io.out(HELP);
      return 0;
    }
    let done!: () => void;
    const finished = new Promise<void>((resolve) => (done = resolve));
    const monitor = new QmpMonitor((emit) => new BlockGraph(emit), { onQuit: () => done() });
    const chardevs = new Map<string, Chardev>();
    const monitors: Monitor[] = [];
    const sockets: Server[] = [];
    for (const [key, value] of parsed.opts) {
      await option(key, value, () => startOption(key, value, monitor, chardevs, monitors));
    }
    for (const m of monitors) {
      const dev = chardevs.get(m.chardev)!;
      if (dev.kind === 'stdio') serveStdio(monitor, m.pretty, io, done);
      else sockets.push(await serveSocket(monitor, m.pretty, dev.path));
    }
    // Like qemu-storage-daemon, run until told to stop, even with nothing to serve.
    const keepAlive = setInterval(() => {}, 1 << 30);
    for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, done);
    await finished;
    clearInterval(keepAlive);
    for (const s of sockets) s.close();
    await shutdownNbd(monitor.graph);
    await closeAll(monitor.graph);
    return 0;
  });

/** Runs one option's action; its error is prefixed with the option as qemu-storage-daemon does. */
async function option(key: string, value: string, action: () => Promise<void> | void): Promise<void> {
  try {
    await action();
  } catch (err) {
    if (err instanceof QmpError) throw new CliExit(`--${key} ${value}: ${err.message}`);
    throw err;
  }
}

async function startOption(
  key: string,
  value: string,
  monitor: QmpMonitor,
  chardevs: Map<string, Chardev>,
  monitors: Monitor[],
): Promise<void> {
  switch (key) {
    case 'chardev':
      return addChardev(value, chardevs);
    case 'monitor':
      monitors.push(parseMonitor(value, chardevs, monitors));
      return;
    case 'blockdev': {
      const { options, source } = parseBlockdev(value);
      await addRootNode(monitor.graph, options, source);
      return;
    }
    case 'object':
      addObjects([value], monitor.graph.objects);
      return;
    case 'nbd-server':
      return startNbdServer(value, monitor);
    case 'export':
      return exportFromOptions(monitor.graph, exportOptions(value));
  }
}

/** --nbd-server: QAPI NbdServerOptions from keyval (`addr` is a flat SocketAddress). */
async function startNbdServer(value: string, monitor: QmpMonitor): Promise<void> {
  const { addr, 'max-connections': max, ...rest } = parseKeyval(value) as Record<string, unknown>;
  const extra = Object.keys(rest).find((k) => !['tls-creds', 'tls-authz'].includes(k));
  if (extra !== undefined) throw genericError(`Parameter '${extra}' is unexpected`);
  if (addr === undefined) throw genericError("Parameter 'addr' is missing");
  if (rest['tls-creds'] !== undefined || rest['tls-authz'] !== undefined) {
    throw genericError("blockgraph's NBD server does not support TLS");
  }
  const limit = max === undefined ? 0 : Number(max);
  if (!Number.isInteger(limit) || limit < 0) {
    throw genericError("Parameter 'max-connections' expects uint32_t");
  }
  await nbdServerStart(monitor.graph, socketAddress(addr, false), limit);
}

/** --export: keyval with `type` implied, its on/off words made booleans as QAPI's keyval does. */
function exportOptions(value: string): Record<string, unknown> {
  const opts: Record<string, unknown> = parseKeyval(value, { impliedKey: 'type' });
  for (const key of ['writable', 'writethrough', 'fixed-iothread', 'allocation-depth']) {
    const word = opts[key];
    if (word === undefined) continue;
    const on = typeof word === 'string' ? BOOL_WORDS[word] : undefined;
    if (on === undefined) throw genericError(`Parameter '${key}' expects 'on' or 'off'`);
    opts[key] = on;
  }
  return opts;
}

/** --chardev: QemuOpts with the backend implied first; only one stdio may exist. */
function addChardev(value: string, chardevs: Map<string, Chardev>): void {
  const { options } = parseQemuOpts(value, 'backend');
  const socket = options.backend === 'socket';
  const bad = Object.keys(options).find((k) => !(socket ? SOCKET_PARAMS : STDIO_PARAMS).has(k));
  if (bad !== undefined) throw genericError(`Invalid parameter '${bad}'`);
  if (options.id === undefined) throw genericError('chardev: no id specified');
  if (socket) {
    if (options.path === undefined) throw genericError('Unable to parse FD number ');
    if (BOOL_WORDS[options.server ?? 'off'] !== true || BOOL_WORDS[options.wait ?? 'on'] !== false) {
      throw genericError('chardev socket: only server=on,wait=off is supported');
    }
    chardevs.set(options.id, { kind: 'socket', path: options.path });
    return;
  }
  if (options.backend !== 'stdio') {
    throw genericError(`chardev backend '${options.backend ?? ''}' is not supported (only stdio and socket)`);
  }
  if ([...chardevs.values()].some((c) => c.kind === 'stdio')) {
    throw genericError('cannot use stdio by multiple character devices');
  }
  chardevs.set(options.id, { kind: 'stdio' });
}

/** --monitor: QAPI MonitorOptions from keyval, `chardev` implied (qemu-storage-daemon). */
function parseMonitor(
  value: string,
  chardevs: ReadonlyMap<string, Chardev>,
  monitors: readonly Monitor[],
): Monitor {
  const opts = parseKeyval(value, { impliedKey: 'chardev' });
  const extra = Object.keys(opts).find((k) => !['id', 'mode', 'pretty', 'chardev'].includes(k));
  if (extra !== undefined) throw genericError(`Parameter '${extra}' is unexpected`);
  const { chardev, mode = 'control', pretty = 'off' } = opts as Record<string, string>;
  if (chardev === undefined) throw genericError("Parameter 'chardev' is missing");
  if (mode !== 'control' && mode !== 'readline')
    throw genericError(`Parameter 'mode' does not accept value '${mode}'`);
  const prettyOn = BOOL_WORDS[pretty];
  if (prettyOn === undefined) throw genericError("Parameter 'pretty' expects 'on' or 'off'");
  if (mode === 'readline') throw genericError('Only QMP is supported');
  if (!chardevs.has(chardev)) throw genericError(`chardev "${chardev}" not found`);
  if (monitors.some((m) => m.chardev === chardev)) throw genericError(`Device '${chardev}' is in use`);
  return { chardev, pretty: prettyOn };
}

/** QMP on stdin/stdout until quit or end of input. */
function serveStdio(monitor: QmpMonitor, pretty: boolean, io: CliIo, done: () => void): void {
  const session = monitor.connect((text) => io.out(`${text}\n`), { pretty });
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (chunk: string) => session.feed(chunk));
  // An incomplete message at end of input is dropped, as QEMU drops it when the chardev closes.
  process.stdin.on('end', () => void session.idle().then(done));
}

/**
 * QMP on a listening Unix socket: each client gets its own session (greeting included), with
 * QEMU's socket chardev line ending "\r\n". Quit ends the daemon, a hang-up only the session.
 */
function serveSocket(monitor: QmpMonitor, pretty: boolean, path: string): Promise<Server> {
  const server = createServer((sock) => {
    const session = monitor.connect((text) => void sock.write(`${text}\r\n`), { pretty });
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => session.feed(chunk));
    sock.on('error', () => sock.destroy());
  });
  rmSync(path, { force: true });
  return new Promise((resolve, reject) => {
    server.once('error', (err) => reject(genericError(`Failed to bind socket to ${path}: ${err.message}`)));
    server.listen(path, () => resolve(server));
  });
}

/** Closes every node at exit (bdrv_close_all), parents before the children they use. */
async function closeAll(graph: BlockGraph): Promise<void> {
  process.stdin.destroy();
  for (const node of [...graph.nodes.values()].reverse()) await node.close();
}

const HELP = `Usage: ${PROGRAM} daemon [options]
QEMU storage daemon over the block graph

  -h, --help                     display this help and exit
  --blockdev [driver=]<driver>[,node-name=<N>][,<prop>=<value>...]
                                 configure a block backend node (also as JSON)
  --chardev stdio,id=<id>        configure a character device (stdio, or
  --chardev socket,id=<id>,path=<path>,server=on,wait=off   a Unix socket)
  --nbd-server addr.type=inet,addr.host=<host>,addr.port=<port>[,max-connections=<n>]
  --nbd-server addr.type=unix,addr.path=<path>[,max-connections=<n>]
                                 start an NBD server for exports
  --export [type=]nbd,id=<id>,node-name=<node-name>[,name=<export-name>]
           [,writable=on|off][,description=<text>]
                                 export the specified block node over NBD
  --monitor [chardev=]name[,mode=control][,pretty[=on|off]]
                                 configure a QMP monitor
  --object <type>[,<property>=<value>...]
                                 create an object (secret, throttle-group)
`;
