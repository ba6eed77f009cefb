/**
 * `blockgraph daemon`: qemu-storage-daemon's command line over the graph. Options are processed
 * in command-line order, as qemu-storage-daemon does, so a --monitor names a --chardev given
 * before it and a --blockdev may refer to nodes added before it:
 *   --chardev stdio,id=ID              the only character device backend so far
 *   --monitor [chardev=]ID[,mode=control][,pretty=on|off]   QMP on that chardev
 *   --blockdev <keyval or JSON>        blockdev-add at start-up
 *   --object secret,id=ID,data=...     objects (only secrets, as the other commands)
 * Errors are qemu-storage-daemon's: "--monitor chardev=m1: chardev "m1" not found".
 * Unlike qemu-storage-daemon, the daemon exits when its stdio monitor reaches end of input:
 * nothing else could reach it then (there are no exports yet).
 */
import { genericError, QmpError } from '../block/errors.ts';
import { BOOL_WORDS } from '../config/validate.ts';
import { parseBlockdev } from '../config/blockdev.ts';
import { parseKeyval } from '../config/keyval.ts';
import { parseQemuOpts } from '../config/qemu-opts.ts';
import { BlockGraph } from '../graph/graph.ts';
import { addRootNode } from '../qmp/commands/block.ts';
import { QmpMonitor } from '../qmp/monitor.ts';
import { addObjects } from './objects.ts';
import { glibcMessage, getopt } from './getopt.ts';
import { CliExit, PROGRAM, runReporting, type CliIo, type CommandRun } from './program.ts';

const LONG_OPTIONS = ['blockdev', 'chardev', 'monitor', 'object'].map((name) => ({ name, hasArg: true }));

/** Parameters QEMU's chardev options accept for stdio (qemu_chardev_opts). */
const STDIO_PARAMS = new Set(['backend', 'id', 'signal', 'logfile', 'logappend', 'mux']);

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
    const chardevs = new Set<string>();
    const monitors: Monitor[] = [];
    for (const [key, value] of parsed.opts) {
      await option(key, value, () => startOption(key, value, monitor, chardevs, monitors));
    }
    const stdio = monitors.find((m) => chardevs.has(m.chardev));
    if (stdio) serveStdio(monitor, stdio.pretty, io, done);
    // Like qemu-storage-daemon, run until told to stop, even with nothing to serve.
    const keepAlive = setInterval(() => {}, 1 << 30);
    for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, done);
    await finished;
    clearInterval(keepAlive);
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
  chardevs: Set<string>,
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
      addObjects([value]);
  }
}

/** --chardev: QemuOpts with the backend implied first; only one stdio may exist. */
function addChardev(value: string, chardevs: Set<string>): void {
  const { options } = parseQemuOpts(value, 'backend');
  const bad = Object.keys(options).find((k) => !STDIO_PARAMS.has(k));
  if (bad !== undefined) throw genericError(`Invalid parameter '${bad}'`);
  if (options.id === undefined) throw genericError('chardev: no id specified');
  if (options.backend !== 'stdio') {
    throw genericError(`chardev backend '${options.backend ?? ''}' is not supported (only stdio)`);
  }
  if (chardevs.size > 0) throw genericError('cannot use stdio by multiple character devices');
  chardevs.add(options.id);
}

/** --monitor: QAPI MonitorOptions from keyval, `chardev` implied (qemu-storage-daemon). */
function parseMonitor(value: string, chardevs: ReadonlySet<string>, monitors: readonly Monitor[]): Monitor {
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
  --chardev stdio,id=<id>        configure a character device (only stdio)
  --monitor [chardev=]name[,mode=control][,pretty[=on|off]]
                                 configure a QMP monitor
  --object secret,id=<id>,data=<data>
                                 create a secret object
`;
