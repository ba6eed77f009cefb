/**
 * The blockgraph program: `blockgraph <command> [args]`, commands named like qemu-img's. Each
 * command lives in its own module, loaded only when run (so `info` does not load v86); adding
 * one is one line in COMMANDS. bin/blockgraph.js imports this module, which runs the program
 * with the process's arguments and sets its exit code.
 */
import { PROGRAM, processIo, runReporting, CliExit, type CliIo, type CommandRun } from './program.ts';

interface Command {
  readonly summary: string;
  readonly load: () => Promise<{ run: CommandRun }>;
}

const COMMANDS: Readonly<Record<string, Command>> = {
  info: {
    summary: 'display information about a disk image (qemu-img info)',
    load: () => import('./info.ts'),
  },
  convert: {
    summary: 'copy a disk image into a new one (qemu-img convert)',
    load: () => import('./convert.ts'),
  },
  check: { summary: 'check a disk image for consistency (qemu-img check)', load: () => import('./check.ts') },
  create: { summary: 'create a new disk image (qemu-img create)', load: () => import('./create.ts') },
  measure: {
    summary: 'calculate the file size required for a new image (qemu-img measure)',
    load: () => import('./measure.ts'),
  },
  map: { summary: 'print the allocation map of a disk image (qemu-img map)', load: () => import('./map.ts') },
  compare: {
    summary: 'check whether two disk images have the same content (qemu-img compare)',
    load: () => import('./compare.ts'),
  },
  snapshot: {
    summary: 'list the internal snapshots of a disk image (qemu-img snapshot)',
    load: () => import('./snapshot.ts'),
  },
  resize: { summary: 'change the size of a disk image (qemu-img resize)', load: () => import('./resize.ts') },
  commit: {
    summary: 'commit an image into its backing file (qemu-img commit)',
    load: () => import('./commit.ts'),
  },
  rebase: {
    summary: 'change the backing file of an image (qemu-img rebase)',
    load: () => import('./rebase.ts'),
  },
  amend: {
    summary: 'change the format-specific options of an image (qemu-img amend)',
    load: () => import('./amend.ts'),
  },
  io: { summary: 'run I/O commands on a disk image (qemu-io)', load: () => import('./io.ts') },
  boot: { summary: 'boot v86 from disks served by the graph', load: () => import('./boot.ts') },
  publish: { summary: 'write an image as chunk files for http', load: () => import('./publish.ts') },
  nbd: { summary: 'serve a disk image over NBD (qemu-nbd)', load: () => import('./nbd.ts') },
  'nbd-bridge': {
    summary: 'bridge WebSocket clients to an NBD server (for browsers)',
    load: () => import('./nbd-bridge.ts'),
  },
  daemon: { summary: 'serve QMP over the graph (qemu-storage-daemon)', load: () => import('./daemon.ts') },
};

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((name) => name.length));
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}\n`);
  return `usage: ${PROGRAM} command [command options]\nQEMU's block layer for the browser\n\nCommands:\n${lines.join('')}`;
}

/** Runs `blockgraph <args>`; resolves to the exit code. */
async function main(args: string[], io: CliIo = processIo()): Promise<number> {
  const [name, ...rest] = args;
  if (name === '-h' || name === '--help') {
    io.out(usage());
    return 0;
  }
  const command = name === undefined ? undefined : Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!command) {
    return runReporting(io, async () => {
      throw new CliExit(name === undefined ? 'Not enough arguments' : `Command not found: ${name}`, true);
    });
  }
  return (await command.load()).run(rest, io);
}

process.exitCode = await main(process.argv.slice(2));
