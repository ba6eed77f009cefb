/**
 * human-monitor-command (qapi/misc.json): the HMP commands blockgraph has — savevm, loadvm, delvm,
 * info snapshots, stop, cont — parsed and answered as QEMU 7.2's monitor does (monitor/hmp.c:
 * arguments, "unknown command", "extraneous characters"; hmp_handle_error's "Error: " prefix),
 * output lines ending in "\r\n" as the monitor's output does.
 */
import { QmpError } from '../../block/errors.ts';
import { snapshotDumpHeader, snapshotDumpLine } from '../../cli/format.ts';
import { deleteVm, loadVm, saveVm, snapshotsInfo } from '../../frontends/savevm.ts';
import type { BlockGraph } from '../../graph/graph.ts';
import type { QmpCommand } from './types.ts';

interface HmpCommand {
  /** `help` text: the arguments and what it does (QEMU's hmp-commands.hx). */
  readonly params: string;
  readonly help: string;
  /** The string argument: 'optional', 'required', or none. */
  readonly arg?: 'optional' | 'required';
  /** Output text ("\n" lines); a thrown QmpError is reported as hmp_handle_error does. */
  run(graph: BlockGraph, arg: string | undefined): Promise<string>;
}

const COMMANDS: Readonly<Record<string, HmpCommand>> = {
  savevm: {
    params: 'tag',
    help: 'save a VM snapshot. If no tag is provided, a new snapshot is created',
    arg: 'optional',
    run: (graph, name) => handled(saveVm(graph, { name, overwrite: true })),
  },
  loadvm: {
    params: 'tag',
    help: 'restore a VM snapshot from its tag',
    arg: 'required',
    run: (graph, name) => handled(loadVm(graph, { name: name! })),
  },
  delvm: {
    params: 'tag',
    help: 'delete a VM snapshot from its tag',
    arg: 'required',
    run: (graph, name) => handled(deleteVm(graph, { name: name! })),
  },
  stop: {
    params: '',
    help: 'stop emulation',
    run: (graph) => handled(Promise.resolve(graph.runState.stop())),
  },
  cont: { params: '', help: 'resume emulation', run: (graph) => handled(graph.runState.cont()) },
};

const INFO: Readonly<Record<string, HmpCommand>> = {
  snapshots: {
    params: '',
    help: 'show the currently saved VM snapshots',
    // error_report_err: the message alone, no "Error: " prefix.
    run: async (graph) => {
      try {
        return snapshotsInfo(graph, { header: snapshotDumpHeader, line: snapshotDumpLine });
      } catch (err) {
        if (err instanceof QmpError) return `${err.message}\n`;
        throw err;
      }
    },
  },
};

/** hmp_handle_error: a failure prints "Error: <message>". */
async function handled(work: Promise<unknown>): Promise<string> {
  try {
    await work;
    return '';
  } catch (err) {
    if (err instanceof QmpError) return `Error: ${err.message}\n`;
    throw err;
  }
}

export const humanMonitorCommand: QmpCommand = {
  name: 'human-monitor-command',
  help: `run an HMP command: ${[...Object.keys(COMMANDS), 'info snapshots', 'help'].join(', ')}`,
  args: {
    'command-line': { type: 'str', help: 'the command and its arguments' },
    'cpu-index': { type: 'int', optional: true, help: 'the CPU to use (ignored: v86 has one)' },
  },
  async run(ctx, args) {
    const out = await runLine(ctx.graph, args['command-line'] as string);
    return out.replace(/\n/g, '\r\n');
  },
};

/** monitor_parse_command and handle_hmp_command for one line. */
async function runLine(graph: BlockGraph, line: string): Promise<string> {
  const words = new Words(line);
  const name = words.next();
  if (name === undefined) return '';
  if (name === 'help' || name === '?') return help(words.rest());
  if (name === 'info') {
    const sub = words.next();
    if (sub === undefined) return table('info ', INFO);
    const cmd = INFO[sub];
    if (!cmd) return `unknown command: 'info ${sub}'\n`;
    return invoke(graph, cmd, `info ${sub}`, sub, words);
  }
  const cmd = COMMANDS[name];
  if (!cmd) return `unknown command: '${name}'\n`;
  return invoke(graph, cmd, name, name, words);
}

/** Parses the command's argument as monitor_parse_arguments does, then runs it. */
async function invoke(graph: BlockGraph, cmd: HmpCommand, full: string, short: string, words: Words) {
  const usage = (what: string) => `${short}: ${what}\nTry "help ${full}" for more information\n`;
  let arg: string | undefined;
  if (cmd.arg) {
    try {
      arg = words.next();
    } catch {
      return usage('invalid string');
    }
    if (arg === undefined && cmd.arg === 'required') return usage('string expected');
  }
  if (words.rest() !== '') return usage('extraneous characters at the end of line');
  return cmd.run(graph, arg);
}

function help(topic: string): string {
  const sub = topic.startsWith('info') ? topic.slice(4).trim() : undefined;
  if (sub !== undefined) return sub ? table('info ', INFO, sub) : table('info ', INFO);
  return topic ? table('', COMMANDS, topic) : table('', COMMANDS) + table('info ', INFO);
}

/** help_cmd_dump: "<name> <params> -- <help>" per command, all or the one named `only`. */
function table(prefix: string, cmds: Readonly<Record<string, HmpCommand>>, only?: string): string {
  return Object.entries(cmds)
    .filter(([name]) => only === undefined || name === only)
    .map(([name, c]) => `${prefix}${name} ${c.params} -- ${c.help}\n`)
    .join('');
}

/**
 * The words of a line as get_str reads them: separated by white space, or double-quoted with
 * the escapes \n, \r, \\, \' and \" (an unterminated quote or unknown escape throws).
 */
class Words {
  private pos = 0;

  constructor(private readonly line: string) {}

  next(): string | undefined {
    this.skipSpace();
    if (this.pos >= this.line.length) return undefined;
    if (this.line[this.pos] !== '"') {
      const start = this.pos;
      while (this.pos < this.line.length && !/\s/.test(this.line[this.pos]!)) this.pos++;
      return this.line.slice(start, this.pos);
    }
    let out = '';
    for (this.pos++; this.pos < this.line.length && this.line[this.pos] !== '"'; this.pos++) {
      const c = this.line[this.pos]!;
      if (c !== '\\') {
        out += c;
        continue;
      }
      const escaped = ESCAPES[this.line[++this.pos] ?? ''];
      if (escaped === undefined) throw new Error('unsupported escape code');
      out += escaped;
    }
    if (this.pos >= this.line.length) throw new Error('unterminated string');
    this.pos++;
    return out;
  }

  /** What is left after the words read, without surrounding white space. */
  rest(): string {
    this.skipSpace();
    return this.line.slice(this.pos).trim();
  }

  private skipSpace(): void {
    while (this.pos < this.line.length && /\s/.test(this.line[this.pos]!)) this.pos++;
  }
}

const ESCAPES: Readonly<Record<string, string>> = { n: '\n', r: '\r', '\\': '\\', "'": "'", '"': '"' };
