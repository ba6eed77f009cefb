/**
 * `blockgraph boot`: runs v86 in Node with the graph in the same process, every disk access
 * going guest → v86 IDE → V86Disk → BlockBackend → graph (DESIGN.md §3); the guest's first serial
 * port is the terminal. Options are qemu-system's where they exist (-drive, -device, -hda, -hdb,
 * -cdrom, -fda, -fdb, -boot, -m, -qmp, a bare image name as -hda), with its error texts; --until,
 * --timeout and --stats are ours.
 */
import type { DeviceConfig } from '../config/device.ts';
import {
  driveShorthand,
  driveToConfig,
  parseDevice,
  parseDrive,
  type DriveConfig,
  type DriveShorthand,
} from '../config/drive.ts';
import type { ParsedOpts } from '../config/qemu-opts.ts';
import { strtosz } from '../config/size.ts';
import type { DiskErrorHandler } from '../frontends/v86-disk.ts';
import {
  assignSlots,
  closeMachineDrive,
  hookMachineDrives,
  openMachineDrive,
  type MachineDrive,
  type SlotAssignment,
  type V86Devices,
} from '../frontends/v86-drives.ts';
import { startNodeMachine } from '../frontends/v86-node.ts';
import { BlockGraph } from '../graph/graph.ts';
import { QmpMonitor } from '../qmp/monitor.ts';
import { forwardPipe, forwardTerminal, SerialOutput } from './boot-console.ts';
import { parseBootOrder } from './boot-order.ts';
import { parseQmpSocket, serveQmp, type QmpSocketSpec } from './boot-qmp.ts';
import { CliExit, PROGRAM, report, runReporting, type CliIo } from './program.ts';

const USAGE = `usage: ${PROGRAM} boot [-drive OPTS]... [-device OPTS]... [-hda IMG] [-hdb IMG] [-cdrom IMG]
                       [-fda IMG] [-fdb IMG] [-boot ORDER] [-m SIZE] [-qmp unix:PATH,server=on]
                       [--until REGEX] [--timeout S] [--stats] [IMG]
Boot v86 with disks served by the block graph; the guest's serial port is the terminal.

  -drive OPTS      a drive, as qemu-system's -drive (if=ide|floppy|none; ide index 0 is hda,
                   1 hdb, 2 the CD-ROM)
  -device OPTS     ide-hd|ide-cd|floppy,drive=ID[,bus=ide.N][,unit=N][,id=ID] for an if=none drive
  -hda/-hdb IMG    shorthand for -drive file=IMG,index=0|1,media=disk (a bare IMG is -hda)
  -cdrom IMG       shorthand for -drive file=IMG,index=2,media=cdrom
  -fda/-fdb IMG    shorthand for -drive file=IMG,if=floppy,index=0|1
  -boot ORDER      [order=]LETTERS: a floppy, c hard disk, d CD-ROM (at most three)
  -m SIZE          guest RAM, MiB unless suffixed (default 64)
  -qmp unix:PATH,server=on[,wait=off]   QMP on a Unix socket (wait=on: start once connected)
  --until REGEX    exit 0 as soon as a line of serial output matches REGEX
  --timeout S      give up after S seconds: exit 1 with --until (default 120), else exit 0
  --stats          print the disk requests v86 made, and the run time, on stderr
On a terminal, the keys go to the guest; Ctrl-A x quits.
`;

const DEFAULT_MEMORY = 64 << 20;
const DEFAULT_UNTIL_TIMEOUT = 120;

interface DriveArg {
  /** How the user wrote it, for error messages: "-drive file=x,format=raw", "-hda x". */
  readonly text: string;
  readonly opts: ParsedOpts;
}

interface BootArgs {
  readonly drives: DriveArg[];
  readonly devices: DeviceArg[];
  readonly bootOrder?: number;
  readonly qmp?: QmpSocketSpec;
  readonly memorySize: number;
  readonly until?: RegExp;
  readonly timeout?: number;
  readonly stats: boolean;
  readonly help: boolean;
}

interface DeviceArg {
  readonly text: string;
  readonly config: DeviceConfig;
}

/** Options that take a value, besides the drive shorthands. */
const VALUE_OPTIONS = ['drive', 'device', 'boot', 'qmp', 'm', 'until', 'timeout'];
const SHORTHANDS = ['hda', 'hdb', 'cdrom', 'fda', 'fdb'];

/** How a run ended: a matched line, Ctrl-A x or a signal, or the timeout. */
type Ending = { kind: 'exit'; code: number } | { kind: 'timeout' };

export async function run(args: string[], io: CliIo): Promise<number> {
  return runReporting(io, async () => {
    const opts = parseArgs(args);
    if (opts.help) {
      io.out(USAGE);
      return 0;
    }
    if (opts.drives.length === 0) throw new CliExit('boot: no disk given (-drive or -hda)', true);
    let quit!: () => void;
    const quitting = new Promise<void>((resolve) => (quit = resolve));
    const monitor = new QmpMonitor((emit) => new BlockGraph(emit), { onQuit: () => quit() });
    const drives: MachineDrive[] = [];
    try {
      await openDrives(monitor.graph, opts, drives, diskErrorReporter(io));
      const stopQmp = opts.qmp ? await serveQmp(monitor, opts.qmp) : async () => {};
      try {
        return await boot(monitor, drives, opts, quitting, io);
      } finally {
        await stopQmp();
      }
    } finally {
      for (const drive of drives) await closeMachineDrive(drive);
    }
  });
}

/** Parses qemu-system style options: `-name value` (or `--name value`, `--name=value`). */
function parseArgs(args: string[]): BootArgs {
  const drives: DriveArg[] = [];
  const devices: DeviceArg[] = [];
  let bootOrder: number | undefined;
  let qmp: QmpSocketSpec | undefined;
  let memorySize = DEFAULT_MEMORY;
  let until: RegExp | undefined;
  let timeout: number | undefined;
  let stats = false;
  let help = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith('-')) {
      drives.push(shorthand('-hda', arg));
      continue;
    }
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const name = (eq < 0 ? arg : arg.slice(0, eq)).replace(/^--?/, '');
    if (name === 'stats' || name === 'help' || name === 'h') {
      if (name === 'stats') stats = true;
      else help = true;
      continue;
    }
    if (!VALUE_OPTIONS.includes(name) && !SHORTHANDS.includes(name)) {
      throw new CliExit(`-${name}: invalid option`);
    }
    let value: string;
    if (eq >= 0) value = arg.slice(eq + 1);
    else if (i + 1 < args.length) value = args[++i]!;
    else throw new CliExit(`-${name}: requires an argument`);
    const text = `-${name} ${value}`;
    if (name === 'drive') drives.push({ text, opts: parseDrive(value) });
    else if (SHORTHANDS.includes(name)) drives.push(shorthand(`-${name}` as DriveShorthand, value));
    else if (name === 'device') devices.push({ text, config: optionValue(text, () => parseDevice(value)) });
    else if (name === 'boot') bootOrder = optionValue(text, () => parseBootOrder(value));
    else if (name === 'qmp') qmp = optionValue(text, () => parseQmpSocket(value));
    else if (name === 'm') memorySize = parseMemory(value);
    else if (name === 'until') until = parseRegex(value);
    else timeout = parseTimeout(value);
  }
  if (until && timeout === undefined) timeout = DEFAULT_UNTIL_TIMEOUT;
  return { drives, devices, bootOrder, qmp, memorySize, until, timeout, stats, help };
}

/** Runs an option's parser; its error is prefixed with the option, as qemu-system does. */
function optionValue<T>(text: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    throw new CliExit(`${text}: ${(err as Error).message}`);
  }
}

function shorthand(flag: DriveShorthand, file: string): DriveArg {
  return { text: `${flag} ${file}`, opts: driveShorthand(flag, file) };
}

/** -m: a size, in MiB when it has no suffix (vl.c: parse_memory_options). */
function parseMemory(value: string): number {
  try {
    const bytes = Number(strtosz(/^\d+$/.test(value) ? `${value}M` : value));
    if (bytes > 0 && Number.isSafeInteger(bytes)) return bytes;
  } catch {
    // reported below, with QEMU's text
  }
  throw new CliExit(
    `-m ${value}: Parameter 'size' expects a non-negative number below 2^64\n` +
      'Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\n' +
      'and exabytes, respectively.',
  );
}

function parseRegex(value: string): RegExp {
  try {
    return new RegExp(value);
  } catch (err) {
    throw new CliExit(`--until ${value}: ${(err as Error).message}`);
  }
}

function parseTimeout(value: string): number {
  const s = Number(value);
  if (value.trim() === '' || !Number.isFinite(s) || s <= 0) {
    throw new CliExit(`--timeout ${value}: expects a positive number of seconds`);
  }
  return s;
}

/**
 * Turns the -drive and -device options into v86's slots and opens each into `out` (so the caller
 * closes what was opened even on failure). Errors name the option they come from.
 */
async function openDrives(
  graph: BlockGraph,
  opts: BootArgs,
  out: MachineDrive[],
  onError: DiskErrorHandler,
): Promise<void> {
  const configs: DriveConfig[] = [];
  const textOf = new Map<string, string>();
  for (const arg of opts.drives) {
    const config = optionValue(arg.text, () => driveToConfig(arg.opts, configs));
    configs.push(config);
    textOf.set(config.id, arg.text);
  }
  let slots: SlotAssignment[];
  try {
    slots = assignSlots(
      configs,
      opts.devices.map((d) => d.config),
      (kind, i, err) => {
        const text = kind === 'drive' ? opts.drives[i]!.text : opts.devices[i]!.text;
        return new CliExit(`${text}: ${(err as Error).message}`);
      },
    );
  } catch (err) {
    throw err instanceof CliExit ? err : new CliExit((err as Error).message);
  }
  for (const slot of slots) {
    const text = textOf.get(slot.drive.id) ?? `-device ${slot.deviceId}`;
    out.push(
      await optionValue(text, () => openMachineDrive(graph, slot, onError)).catch((err: unknown) => {
        throw err instanceof CliExit ? err : new CliExit(`${text}: ${(err as Error).message}`);
      }),
    );
  }
}

/** A failed guest request that reached the device (after the drive's error policy) goes to stderr. */
function diskErrorReporter(io: CliIo): DiskErrorHandler {
  return (op, offset, bytes, err) =>
    report(io, `guest ${op} of ${bytes} bytes at ${offset} failed: ${(err as Error).message}`);
}

/** Runs the machine until --until matches, the timeout, Ctrl-A x or a signal; then destroys it. */
async function boot(
  monitor: QmpMonitor,
  drives: MachineDrive[],
  opts: BootArgs,
  quitting: Promise<void>,
  io: CliIo,
): Promise<number> {
  const graph = monitor.graph;
  let end!: (ending: Ending) => void;
  const ended = new Promise<Ending>((resolve) => (end = resolve));
  const output = new SerialOutput(io.out, (line) => {
    if (opts.until?.test(line)) end({ kind: 'exit', code: 0 });
  });
  void quitting.then(() => end({ kind: 'exit', code: 0 }));
  const disk = (slot: string) => drives.find((d) => d.slot === slot)?.disk;
  const started = performance.now();
  const machine = await startNodeMachine({
    memorySize: opts.memorySize,
    hda: disk('hda'),
    hdb: disk('hdb'),
    cdrom: disk('cdrom'),
    fda: disk('fda'),
    fdb: disk('fdb'),
    bootOrder: opts.bootOrder,
    virtio: drives.filter((d) => d.slot === 'virtio').map((d) => d.backend),
    onDevices: (devices) =>
      hookMachineDrives(devices as V86Devices, drives, graph.emit, diskErrorReporter(io)),
    onSerialByte: (b) => output.byte(b),
  });
  const cleanups = [
    // werror/rerror=stop stops the machine through the graph's run state; `cont` resumes it.
    graph.runState.listen((running) => void (running ? machine.resume() : machine.pause())),
    onSignals(end),
    opts.timeout === undefined ? () => {} : onTimeout(opts.timeout, end),
    process.stdin.isTTY
      ? forwardTerminal(process.stdin, machine.sendSerial, () => end({ kind: 'exit', code: 0 }))
      : forwardPipe(process.stdin, machine.sendSerial),
  ];
  const ending = await ended;
  for (const cleanup of cleanups) cleanup();
  output.flush();
  await machine.destroy();
  if (opts.stats) printStats(drives, performance.now() - started, io);
  if (ending.kind === 'exit') return ending.code;
  if (!opts.until) return 0;
  if (!output.atLineStart) io.out('\n');
  throw new CliExit(`boot: timed out after ${opts.timeout} s: no serial line matched /${opts.until.source}/`);
}

function onTimeout(seconds: number, end: (ending: Ending) => void): () => void {
  const timer = setTimeout(() => end({ kind: 'timeout' }), seconds * 1000);
  return () => clearTimeout(timer);
}

/** SIGINT/SIGTERM end the run cleanly, with the shell's 128+N exit codes. */
function onSignals(end: (ending: Ending) => void): () => void {
  const onInt = () => end({ kind: 'exit', code: 130 });
  const onTerm = () => end({ kind: 'exit', code: 143 });
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  return () => {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
  };
}

function printStats(drives: MachineDrive[], ms: number, io: CliIo): void {
  for (const { slot, backend, disk } of drives) {
    if (!disk) continue;
    const s = disk.stats;
    io.err(
      `${slot} (${backend.name}): ${s.gets} reads, ${s.getBytes} bytes; ${s.sets} writes, ${s.setBytes} bytes\n`,
    );
  }
  io.err(`ran ${(ms / 1000).toFixed(1)} s\n`);
}
