/**
 * qemu-io's commands (qemu-io-cmds.c): read, write, discard, flush, aio_flush, map, length, help.
 * Each prints what qemu-io 7.2 prints — result lines, the timing line, pattern-mismatch reports,
 * "<op> failed: <strerror>" — and reports failure so the program exits 1 like qemu-io.
 * Options not listed in a command's `args` (vmstate -b, compressed -c, source files -s, ...) are
 * not implemented and are refused by getopt as invalid options.
 */
import { errnoOf, STRERROR } from '../block/errors.ts';
import type { BlockNode } from '../block/node.ts';
import type { BlockBackend } from '../block/backend.ts';
import { SizeError, strtosz } from '../config/size.ts';
import { cvtstr, formatFixed, timestr } from './format.ts';
import { getopt, glibcMessage } from './getopt.ts';
import { PROGRAM, type CliIo } from './program.ts';

/** QEMU's BDRV_REQUEST_MAX_BYTES: the largest single request (INT_MAX rounded down to 512). */
const REQUEST_MAX_BYTES = 2147483136;

export interface IoContext {
  readonly blk: BlockBackend;
  /** The root node, for allocation status (map). */
  readonly node: BlockNode;
  readonly readOnly: boolean;
  readonly io: CliIo;
}

export interface IoCommand {
  readonly name: string;
  readonly altname?: string;
  readonly argmin: number;
  /** -1: no upper bound. */
  readonly argmax: number;
  /** Usage text; absent for commands without arguments (help prints no gap for them). */
  readonly args?: string;
  readonly oneline: string;
  /** Needs write permission on the image (qemu-io's BLK_PERM_WRITE commands). */
  readonly write?: boolean;
  /** Works without an open image (help). */
  readonly global?: boolean;
  /** Runs with argv[0] = the command name; resolves to false on failure. */
  run(ctx: IoContext, argv: string[]): Promise<boolean>;
}

/** A command-level failure whose message is already printed. */
const FAILED = false;
const OK = true;

/** qemu-io's cvtnum(): a size with optional suffix; prints the parse error and returns undefined. */
function cvtnum(io: CliIo, arg: string): number | undefined {
  let value: bigint;
  try {
    value = strtosz(arg);
  } catch (err) {
    if (!(err instanceof SizeError) || err.reason !== 'ERANGE') {
      io.out(`Parsing error: non-numeric argument, or extraneous/unrecognized suffix -- ${arg}\n`);
      return undefined;
    }
    value = -1n;
  }
  // Beyond INT64_MAX for qemu-io; here beyond 2^53, where offsets stop being exact numbers.
  if (value < 0n || value > BigInt(Number.MAX_SAFE_INTEGER)) {
    io.out(`Parsing error: argument too large -- ${arg}\n`);
    return undefined;
  }
  return Number(value);
}

/** An offset and a length as the last two arguments, length bounded by one request. */
function offsetAndLength(io: CliIo, args: string[]): [number, number] | undefined {
  const offset = cvtnum(io, args[0]);
  if (offset === undefined) return undefined;
  const count = cvtnum(io, args[1]);
  if (count === undefined) return undefined;
  if (count > REQUEST_MAX_BYTES) {
    io.out(`length cannot exceed ${REQUEST_MAX_BYTES}, given ${args[1]}\n`);
    return undefined;
  }
  return [offset, count];
}

/** strtol(arg, &end, 0) limited to one byte, as parse_pattern() accepts it. */
function parsePattern(io: CliIo, arg: string): number | undefined {
  const m = /^\s*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)/.exec(arg);
  const rest = m ? arg.slice(m[0].length) : arg;
  const value = m ? (m[1] === '-' ? -1 : 1) * parseIntC(m[2]) : 0;
  if (value < 0 || value > 255 || rest !== '') {
    io.out(`${arg} is not a valid pattern byte\n`);
    return undefined;
  }
  return value;
}

function parseIntC(digits: string): number {
  if (/^0[xX]/.test(digits)) return parseInt(digits.slice(2), 16);
  return digits.length > 1 && digits[0] === '0' ? parseInt(digits, 8) : parseInt(digits, 10);
}

/** Parses a command's options; on an unknown option prints glibc's message and the usage line. */
function options(
  ctx: IoContext,
  cmd: IoCommand,
  argv: string[],
  spec: string,
): { flags: Map<string, string>; operands: string[] } | undefined {
  const parsed = getopt(argv.slice(1), spec);
  if (parsed.error) {
    ctx.io.err(`${glibcMessage(argv[0], parsed.error)}\n`);
    printUsage(ctx.io, cmd);
    return undefined;
  }
  return { flags: new Map(parsed.opts), operands: parsed.operands };
}

/**
 * Parses `cmd [options] off len` in qemu-io's order: options, operand count, the flag
 * combination check `conflict` (which prints its own message), then offset and length.
 */
function rangeArgs(
  ctx: IoContext,
  cmd: IoCommand,
  argv: string[],
  spec: string,
  conflict?: (io: CliIo, flags: Map<string, string>) => boolean,
): { flags: Map<string, string>; offset: number; count: number } | undefined {
  const parsed = options(ctx, cmd, argv, spec);
  if (!parsed) return undefined;
  if (parsed.operands.length !== 2) {
    printUsage(ctx.io, cmd);
    return undefined;
  }
  if (conflict?.(ctx.io, parsed.flags)) return undefined;
  const range = offsetAndLength(ctx.io, parsed.operands);
  return range && { flags: parsed.flags, offset: range[0], count: range[1] };
}

/** write's flag combinations that qemu-io refuses; prints why. */
function writeFlagsConflict(io: CliIo, flags: Map<string, string>): boolean {
  if (flags.has('u') && !flags.has('z')) {
    io.out('-u requires -z to be specified\n');
    return true;
  }
  if (flags.has('z') && flags.has('P')) {
    io.out('Only one of -z, -P, and -s can be specified at the same time\n');
    return true;
  }
  return false;
}

function printUsage(io: CliIo, cmd: IoCommand): boolean {
  io.out(`${cmd.name} ${cmd.args} -- ${cmd.oneline}\n`);
  return FAILED;
}

/**
 * Times `op` over [offset, offset + count): prints qemu-io's "<name> failed: why", or unless -q
 * its report line for `verb`. Returns whether it succeeded.
 */
async function timedReport(
  io: CliIo,
  name: string,
  verb: string,
  flags: Map<string, string>,
  offset: number,
  count: number,
  op: () => Promise<unknown>,
): Promise<boolean> {
  const result = await timed(op);
  if ('error' in result) {
    io.out(`${name} failed: ${result.error}\n`);
    return FAILED;
  }
  if (!flags.has('q')) printReport(io, verb, result.seconds, offset, count, flags.has('C'));
  return OK;
}

/** Times `op`; returns seconds, or the errno text when it failed. */
async function timed(op: () => Promise<unknown>): Promise<{ seconds: number } | { error: string }> {
  const start = process.hrtime.bigint();
  try {
    await op();
  } catch (err) {
    return { error: STRERROR[errnoOf(err)] };
  }
  return { seconds: Number(process.hrtime.bigint() - start) / 1e9 };
}

/** print_report(): the result line and the statistics line, or -C's machine-readable line. */
function printReport(
  io: CliIo,
  op: string,
  seconds: number,
  offset: number,
  count: number,
  machine: boolean,
): void {
  const perSec = (v: number): number => v / seconds;
  if (machine) {
    io.out(
      `${count},1,${timestr(seconds, true)},${formatFixed(perSec(count), 3)},${formatFixed(perSec(1), 3)}\n`,
    );
    return;
  }
  io.out(`${op} ${count}/${count} bytes at offset ${offset}\n`);
  io.out(
    `${cvtstr(count)}, 1 ops; ${timestr(seconds)} (${cvtstr(perSec(count))}/sec and ${formatFixed(perSec(1), 4)} ops/sec)\n`,
  );
}

/** dump_buffer(): 16 bytes a line, hex then printable (isalnum) characters. */
function dumpBuffer(io: CliIo, buf: Uint8Array, offset: number): void {
  const lines: string[] = [];
  for (let i = 0; i < buf.length; i += 16) {
    const row = buf.subarray(i, i + 16);
    const hex = [...row].map((b) => `${b.toString(16).padStart(2, '0')} `).join('');
    const text = [...row].map((b) =>
      /[A-Za-z0-9]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : '.',
    );
    lines.push(`${(offset + i).toString(16).padStart(8, '0')}:  ${hex} ${text.join('')}\n`);
  }
  io.out(lines.join(''));
}

const read: IoCommand = {
  name: 'read',
  altname: 'r',
  argmin: 2,
  argmax: -1,
  args: '[-Cqv] [-P pattern [-s off] [-l len]] off len',
  oneline: 'reads a number of bytes at a specified offset',
  async run(ctx, argv) {
    const args = rangeArgs(ctx, this, argv, 'Cl:pP:qs:v');
    if (!args) return FAILED;
    const { flags, offset, count } = args;
    const pattern = flags.has('P') ? parsePattern(ctx.io, flags.get('P')!) : 0;
    if (pattern === undefined) return FAILED;
    if (!flags.has('P') && (flags.has('s') || flags.has('l'))) return printUsage(ctx.io, this);
    const patOffset = flags.has('s') ? cvtnum(ctx.io, flags.get('s')!) : 0;
    if (patOffset === undefined) return FAILED;
    const patCount = flags.has('l') ? cvtnum(ctx.io, flags.get('l')!) : count - patOffset;
    if (patCount === undefined) return FAILED;
    if (patCount < 0 || patCount + patOffset > count) {
      ctx.io.out('pattern verification range exceeds end of read data\n');
      return FAILED;
    }
    // qemu-io fills read buffers with 0xab so a short read cannot pass for zeros.
    const buf = new Uint8Array(count).fill(0xab);
    const result = await timed(() => ctx.blk.read(offset, buf));
    if ('error' in result) {
      ctx.io.out(`read failed: ${result.error}\n`);
      return FAILED;
    }
    let ok = OK;
    if (flags.has('P') && buf.subarray(patOffset, patOffset + patCount).some((b) => b !== pattern)) {
      ctx.io.out(`Pattern verification failed at offset ${offset + patOffset}, ${patCount} bytes\n`);
      ok = FAILED;
    }
    if (flags.has('q')) return ok;
    if (flags.has('v')) dumpBuffer(ctx.io, buf, offset);
    printReport(ctx.io, 'read', result.seconds, offset, count, flags.has('C'));
    return ok;
  },
};

const write: IoCommand = {
  name: 'write',
  altname: 'w',
  argmin: 2,
  argmax: -1,
  args: '[-Cfquz] [-P pattern] off len',
  oneline: 'writes a number of bytes at a specified offset',
  write: true,
  async run(ctx, argv) {
    const args = rangeArgs(ctx, this, argv, 'CfpP:quz', writeFlagsConflict);
    if (!args) return FAILED;
    const { flags, offset, count } = args;
    const pattern = flags.has('P') ? parsePattern(ctx.io, flags.get('P')!) : 0xcd;
    if (pattern === undefined) return FAILED;
    return timedReport(ctx.io, 'write', 'wrote', flags, offset, count, () =>
      flags.has('z')
        ? ctx.blk.writeZeroes(offset, count, { unmap: flags.has('u') })
        : ctx.blk.write(offset, new Uint8Array(count).fill(pattern), { fua: flags.has('f') }),
    );
  },
};

const discard: IoCommand = {
  name: 'discard',
  altname: 'd',
  argmin: 2,
  argmax: -1,
  args: '[-Cq] off len',
  oneline: 'discards a number of bytes at a specified offset',
  write: true,
  async run(ctx, argv) {
    const args = rangeArgs(ctx, this, argv, 'Cq');
    if (!args) return FAILED;
    const { flags, offset, count } = args;
    return timedReport(ctx.io, 'discard', 'discard', flags, offset, count, () =>
      ctx.blk.discard(offset, count),
    );
  },
};

const flush: IoCommand = {
  name: 'flush',
  altname: 'f',
  argmin: 0,
  argmax: 0,
  oneline: 'flush all in-core file state to disk',
  async run(ctx) {
    return !('error' in (await timed(() => ctx.blk.flush())));
  },
};

const aioFlush: IoCommand = {
  name: 'aio_flush',
  argmin: 0,
  argmax: 0,
  oneline: 'completes all outstanding aio requests',
  // Every command here completes before the next starts; waiting for in-flight requests is a drain.
  async run(ctx) {
    await ctx.blk.drain();
    return OK;
  },
};

const length: IoCommand = {
  name: 'length',
  altname: 'l',
  argmin: 0,
  argmax: 0,
  oneline: 'gets the length of the current file',
  async run(ctx) {
    ctx.io.out(`${cvtstr(ctx.blk.length())}\n`);
    return OK;
  },
};

const map: IoCommand = {
  name: 'map',
  argmin: 0,
  argmax: 0,
  args: '',
  oneline: 'prints the allocated areas of a file',
  async run(ctx) {
    const end = ctx.node.length();
    for (let offset = 0; offset < end;) {
      let status;
      try {
        status = await allocatedRun(ctx.node, offset, end);
      } catch (err) {
        ctx.io.err(`${PROGRAM}: Failed to get allocation status: ${STRERROR[errnoOf(err)]}\n`);
        return FAILED;
      }
      const [allocated, bytes] = status;
      const what = allocated ? '    allocated' : 'not allocated';
      ctx.io.out(
        `${cvtstr(bytes)} (0x${bytes.toString(16)}) bytes ${what} at offset ${cvtstr(offset)} (0x${offset.toString(16)})\n`,
      );
      offset += bytes;
    }
    return OK;
  },
};

/** map_is_allocated(): the longest run from `offset` with one allocation state. */
async function allocatedRun(node: BlockNode, offset: number, end: number): Promise<[boolean, number]> {
  const first = await node.blockStatus(offset, Math.min(end - offset, REQUEST_MAX_BYTES));
  let bytes = first.bytes;
  while (offset + bytes < end) {
    const next = await node.blockStatus(offset + bytes, Math.min(end - offset - bytes, REQUEST_MAX_BYTES));
    if (next.allocated !== first.allocated) break;
    bytes += next.bytes;
  }
  return [first.allocated, bytes];
}

const help: IoCommand = {
  name: 'help',
  altname: '?',
  argmin: 0,
  argmax: 1,
  args: '[command]',
  oneline: 'help for one or all commands',
  global: true,
  async run(ctx, argv) {
    if (argv.length === 1) {
      for (const cmd of IO_COMMANDS) ctx.io.out(helpLine(cmd.name, cmd));
      ctx.io.out("\nUse 'help commandname' for extended help.\n");
      return OK;
    }
    const cmd = findIoCommand(argv[1]);
    if (!cmd) {
      ctx.io.out(`command ${argv[1]} not found\n`);
      return FAILED;
    }
    ctx.io.out(helpLine(argv[1], cmd));
    return OK;
  },
};

/** help_oneline(): map's empty args leave two spaces, as in qemu-io. */
function helpLine(name: string, cmd: IoCommand): string {
  return `${name} ${cmd.args !== undefined ? `${cmd.args} ` : ''}-- ${cmd.oneline}\n`;
}

/** The command table, sorted by name as qemu-io keeps it. */
export const IO_COMMANDS: readonly IoCommand[] = [aioFlush, discard, flush, help, length, map, read, write];

export function findIoCommand(name: string): IoCommand | undefined {
  return IO_COMMANDS.find((c) => c.name === name || c.altname === name);
}
