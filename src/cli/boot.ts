/**
 * `blockgraph boot`: runs v86 in Node with the graph in the same process, every disk access
 * going guest → v86 IDE → V86Disk → BlockBackend → graph (DESIGN.md §3); the guest's first serial
 * port is the terminal. Options are qemu-system's where they exist (-drive, -hda, -hdb, -m, a
 * bare image name as -hda), with its error texts; --until, --timeout and --stats are ours.
 */
import { BlockGraph } from '../graph/graph.ts';
import { driveShorthand, driveToConfig, parseDrive, type DriveConfig } from '../config/drive.ts';
import type { ParsedOpts } from '../config/qemu-opts.ts';
import { strtosz } from '../config/size.ts';
import { closeIdeDrive, openIdeDrive, type IdeDrive } from '../frontends/v86-drives.ts';
import { startNodeMachine } from '../frontends/v86-node.ts';
import { forwardTerminal, SerialOutput } from './boot-console.ts';
import { CliExit, PROGRAM, report, runReporting, type CliIo } from './program.ts';

const USAGE = `usage: ${PROGRAM} boot [-drive OPTS]... [-hda IMG] [-hdb IMG] [-m SIZE] [--until REGEX]
                       [--timeout S] [--stats] [IMG]
Boot v86 with disks served by the block graph; the guest's serial port is the terminal.

  -drive OPTS      a disk, as qemu-system's -drive (if=ide; index 0 is hda, 1 is hdb)
  -hda/-hdb IMG    shorthand for -drive file=IMG,index=0|1,media=disk (a bare IMG is -hda)
  -m SIZE          guest RAM, MiB unless suffixed (default 64)
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
  readonly memorySize: number;
  readonly until?: RegExp;
  readonly timeout?: number;
  readonly stats: boolean;
  readonly help: boolean;
}

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
    const graph = new BlockGraph();
    const drives: IdeDrive[] = [];
    try {
      await openDrives(graph, opts.drives, drives, io);
      return await boot(graph, drives, opts, io);
    } finally {
      for (const drive of drives) await closeIdeDrive(drive);
    }
  });
}

/** Parses qemu-system style options: `-name value` (or `--name value`, `--name=value`). */
function parseArgs(args: string[]): BootArgs {
  const drives: DriveArg[] = [];
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
    if (!['drive', 'hda', 'hdb', 'm', 'until', 'timeout'].includes(name)) {
      throw new CliExit(`-${name}: invalid option`);
    }
    let value: string;
    if (eq >= 0) value = arg.slice(eq + 1);
    else if (i + 1 < args.length) value = args[++i]!;
    else throw new CliExit(`-${name}: requires an argument`);
    if (name === 'drive') drives.push({ text: `-drive ${value}`, opts: parseDrive(value) });
    else if (name === 'hda' || name === 'hdb') drives.push(shorthand(`-${name}`, value));
    else if (name === 'm') memorySize = parseMemory(value);
    else if (name === 'until') until = parseRegex(value);
    else timeout = parseTimeout(value);
  }
  if (until && timeout === undefined) timeout = DEFAULT_UNTIL_TIMEOUT;
  return { drives, memorySize, until, timeout, stats, help };
}

function shorthand(flag: '-hda' | '-hdb', file: string): DriveArg {
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

/** Opens every drive into `out` (so the caller closes what was opened even on failure). */
async function openDrives(graph: BlockGraph, args: DriveArg[], out: IdeDrive[], io: CliIo): Promise<void> {
  const configs: DriveConfig[] = [];
  for (const arg of args) {
    for (const warning of arg.opts.warnings) report(io, `warning: ${warning}`);
    try {
      const config = driveToConfig(arg.opts, configs);
      configs.push(config);
      out.push(
        await openIdeDrive(graph, config, (op, offset, bytes, err) =>
          report(
            io,
            `${config.id}: guest ${op} of ${bytes} bytes at ${offset} failed: ${(err as Error).message}`,
          ),
        ),
      );
    } catch (err) {
      throw new CliExit(`${arg.text}: ${(err as Error).message}`);
    }
  }
}

/** Runs the machine until --until matches, the timeout, Ctrl-A x or a signal; then destroys it. */
async function boot(graph: BlockGraph, drives: IdeDrive[], opts: BootArgs, io: CliIo): Promise<number> {
  let end!: (ending: Ending) => void;
  const ended = new Promise<Ending>((resolve) => (end = resolve));
  const output = new SerialOutput(io.out, (line) => {
    if (opts.until?.test(line)) end({ kind: 'exit', code: 0 });
  });
  const disk = (slot: string) => drives.find((d) => d.slot === slot)?.disk;
  const started = performance.now();
  const machine = await startNodeMachine({
    memorySize: opts.memorySize,
    hda: disk('hda'),
    hdb: disk('hdb'),
    onSerialByte: (b) => output.byte(b),
  });
  const cleanups = [
    // werror/rerror=stop stops the machine through the graph's run state; `cont` resumes it.
    graph.runState.listen((running) => void (running ? machine.resume() : machine.pause())),
    onSignals(end),
    opts.timeout === undefined ? () => {} : onTimeout(opts.timeout, end),
    process.stdin.isTTY
      ? forwardTerminal(process.stdin, machine.sendSerial, () => end({ kind: 'exit', code: 0 }))
      : () => {},
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

function printStats(drives: IdeDrive[], ms: number, io: CliIo): void {
  for (const { slot, backend, disk } of drives) {
    const s = disk.stats;
    io.err(
      `${slot} (${backend.name}): ${s.gets} reads, ${s.getBytes} bytes; ${s.sets} writes, ${s.setBytes} bytes\n`,
    );
  }
  io.err(`ran ${(ms / 1000).toFixed(1)} s\n`);
}
