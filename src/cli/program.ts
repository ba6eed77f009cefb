/**
 * What every command shares: where output goes, and how errors end a command. Messages keep
 * QEMU's text after the program-name prefix: qemu-img's "qemu-img: Could not open 'x': ..." is
 * ours "blockgraph: Could not open 'x': ...", for every command (info, convert, io, ...).
 */
import { createInterface } from 'node:readline';
import { QmpError } from '../block/errors.ts';

export const PROGRAM = 'blockgraph';

/** Output sinks, so tests can run commands in-process and capture exactly what they print. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  /** Lines typed on standard input (qemu-io's interactive mode); absent when there is none. */
  readonly stdinLines?: AsyncIterable<string>;
}

/** A command's entry point: arguments after the command name; resolves to the exit code. */
export type CommandRun = (args: string[], io: CliIo) => Promise<number>;

/** Ends a command with `message` on stderr (after the program name) and exit code `status`. */
export class CliExit extends Error {
  constructor(
    message: string,
    /** qemu-img's error_exit() adds a "Try ... --help" line after usage errors. */
    readonly usage = false,
    /** The exit code; 1 unless the command has its own (qemu-img compare: 2 to 4). */
    readonly status = 1,
  ) {
    super(message);
    this.name = 'CliExit';
  }
}

/** Prints `message` as QEMU's error_report() does: "<program>: <message>". */
export function report(io: CliIo, message: string): void {
  io.err(`${PROGRAM}: ${message}\n`);
}

/**
 * Runs a command body and turns its failure into QEMU's output and exit code 1: CliExit and
 * QMP-style errors print their message; anything else is a bug and keeps its stack.
 */
export async function runReporting(io: CliIo, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (err) {
    if (err instanceof CliExit) {
      report(io, err.message);
      if (err.usage) io.err(`Try '${PROGRAM} --help' for more information\n`);
      return err.status;
    }
    if (err instanceof QmpError) {
      report(io, err.message);
      return 1;
    }
    throw err;
  }
}

/** The CliIo of the real process; standard input is only read if a command asks for lines. */
export function processIo(): CliIo {
  return {
    out: (text) => void process.stdout.write(text),
    err: (text) => void process.stderr.write(text),
    stdinLines: stdinLines(),
  };
}

async function* stdinLines(): AsyncGenerator<string> {
  yield* createInterface({ input: process.stdin, terminal: false });
}
