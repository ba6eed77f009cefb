/**
 * `blockgraph io`: qemu-io. Opens one image through a BlockBackend and runs qemu-io commands on
 * it, from `-c` arguments in order or, without any, line by line from standard input. Every
 * command runs even after one failed; the exit code is 1 if any failed, as with qemu-io 7.2.
 * Not implemented (refused as invalid options): -s snapshot, -n/-t cache, -d discard, -C
 * copy-on-read, -m misalign, -k/-i aio modes, -T trace.
 */
import { BlockGraph } from '../graph/graph.ts';
import { getopt, glibcMessage, type LongOption } from './getopt.ts';
import { checkFormatOptions, openBackend, type ImageSpec } from './image-opts.ts';
import { findIoCommand, type IoContext } from './io-commands.ts';
import { addObjects } from './objects.ts';
import { CliExit, PROGRAM, runReporting, type CliIo } from './program.ts';

const LONG_OPTIONS: readonly LongOption[] = [
  { name: 'help', hasArg: false, key: 'h' },
  { name: 'cmd', hasArg: true, key: 'c' },
  { name: 'format', hasArg: true, key: 'f' },
  { name: 'read-only', hasArg: false, key: 'r' },
  { name: 'force-share', hasArg: false, key: 'U' },
  { name: 'object', hasArg: true },
  { name: 'image-opts', hasArg: false },
];

const USAGE = `Usage: ${PROGRAM} io [OPTIONS]... [-c STRING]... [file]
QEMU Disk exerciser

  --object OBJECTDEF   define an object such as 'secret' for
                       passwords and/or encryption keys
  --image-opts         treat file as option string
  -c, --cmd STRING     execute command with its arguments
                       from the given string
  -f, --format FMT     specifies the block driver to use
  -r, --read-only      export read-only
  -U, --force-share    force shared permissions
  -h, --help           display this help and exit

See '${PROGRAM} io -c help' for information on available commands.
`;

export async function run(args: string[], io: CliIo): Promise<number> {
  const parsed = getopt(args, 'hc:f:rU', LONG_OPTIONS);
  if (parsed.error || parsed.operands.length > 1) {
    if (parsed.error) io.err(`${glibcMessage(PROGRAM, parsed.error)}\n`);
    io.out(USAGE);
    return 1;
  }
  const values = (key: string): string[] => parsed.opts.filter(([k]) => k === key).map(([, v]) => v);
  if (values('h').length > 0) {
    io.out(USAGE);
    return 0;
  }
  const commands = values('c');
  const filename = parsed.operands[0];
  const spec: ImageSpec = {
    filename: filename ?? '',
    format: values('f').at(-1),
    imageOpts: values('image-opts').length > 0,
    readOnly: values('r').length > 0,
    forceShare: values('U').length > 0,
  };
  return runReporting(io, async () => {
    checkFormatOptions('io', spec);
    const graph = new BlockGraph(undefined, addObjects(values('object')));
    const ctx = filename === undefined ? undefined : await openDevice(graph, spec, io);
    try {
      return (await runCommands(ctx, commands, io)) ? 0 : 1;
    } finally {
      await ctx?.blk.close();
    }
  });
}

/** Opens the image behind a BlockBackend, or fails with qemu-io's "can't open device" message. */
async function openDevice(graph: BlockGraph, spec: ImageSpec, io: CliIo): Promise<IoContext> {
  try {
    const { blk, node } = await openBackend(graph, spec, '');
    return { blk, node, readOnly: spec.readOnly === true, io };
  } catch (err) {
    throw new CliExit(`can't open device ${spec.filename}: ${(err as Error).message}`);
  }
}

/** Runs the -c commands, or standard input's lines when there are none; false if any failed. */
async function runCommands(ctx: IoContext | undefined, commands: string[], io: CliIo): Promise<boolean> {
  let ok = true;
  if (commands.length > 0) {
    for (const line of commands) ok = (await runLine(ctx, line, io)) && ok;
    return ok;
  }
  if (!io.stdinLines) return ok;
  const prompt = `${PROGRAM}> `;
  io.out(prompt);
  for await (const line of io.stdinLines) {
    if (line.trim() === 'quit' || line.trim() === 'q') break;
    ok = (await runLine(ctx, line, io)) && ok;
    io.out(prompt);
  }
  return ok;
}

/** qemuio_command(): split on spaces, find the command, check its argument count and permission. */
export async function runLine(ctx: IoContext | undefined, line: string, io: CliIo): Promise<boolean> {
  const argv = line.split(' ').filter((word) => word !== '');
  if (argv.length === 0) return true;
  const cmd = findIoCommand(argv[0]);
  if (!cmd) {
    io.err(`command "${argv[0]}" not found\n`);
    return false;
  }
  const context = ctx ?? (cmd.global ? { io } : undefined);
  if (!context) {
    io.err("no file open, try 'help open'\n");
    return false;
  }
  const n = argv.length - 1;
  if (n < cmd.argmin || (cmd.argmax !== -1 && n > cmd.argmax)) {
    io.err(`bad argument count ${n} to ${argv[0]}, ${expected(cmd.argmin, cmd.argmax)}\n`);
    return false;
  }
  if (cmd.write && ctx?.readOnly) {
    // qemu-io asks for write permission per command; a read-only node refuses it.
    io.err(`${PROGRAM}: Block node is read-only\n`);
    return false;
  }
  return cmd.run(context as IoContext, argv);
}

function expected(min: number, max: number): string {
  if (max === -1) return `expected at least ${min} arguments`;
  if (min === max) return `expected ${min} arguments`;
  return `expected between ${min} and ${max} arguments`;
}
