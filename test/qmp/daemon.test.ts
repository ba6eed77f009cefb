/**
 * `blockgraph daemon` as a process: its command-line errors against qemu-storage-daemon's
 * (the same text after the program name), and QMP served on stdio with nodes from --blockdev.
 */
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { run as runDaemon } from '../../src/cli/daemon.ts';
import { JsonStream } from '../../src/qmp/json-stream.ts';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(command: string, args: readonly string[], input = ''): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    // A refused command line exits before reading its input: EPIPE on stdin is expected then.
    child.stdin.on('error', () => {});
    child.stdin.end(input);
  });
}

const daemon = (args: readonly string[], input?: string) =>
  run('node', ['bin/blockgraph.js', 'daemon', ...args], input);

/** The daemon in-process: refused command lines end before it touches stdio. */
async function refused(args: string[]): Promise<[number, string]> {
  let stderr = '';
  const code = await runDaemon(args, { out: () => {}, err: (text) => (stderr += text) });
  return [code, stderr];
}

/** Each refused command line must fail as qemu-storage-daemon fails, with the same message. */
const REFUSED: string[][] = [
  ['--monitor', 'chardev=m1'],
  ['--chardev', 'stdio,id=m0', '--monitor', 'chardev=m1'],
  ['--chardev', 'stdio'],
  ['--chardev', 'stdio,id=m0,foo=1'],
  ['--chardev', 'stdio,id=m0', '--chardev', 'stdio,id=m1'],
  ['--chardev', 'stdio,id=m0', '--monitor', 'chardev=m0,mode=readline'],
  ['--chardev', 'stdio,id=m0', '--monitor', 'chardev=m0,mode=x'],
  ['--chardev', 'stdio,id=m0', '--monitor', 'chardev=m0,pretty=x'],
  ['--chardev', 'stdio,id=m0', '--monitor', 'chardev=m0,bogus=1'],
  ['--chardev', 'stdio,id=m0', '--monitor', 'm0', '--monitor', 'm0'],
  ['--monitor', 'id=x'],
  ['--blockdev', 'driver=null-co'],
  ['--blockdev', 'driver=null-co,node-name=a,bogus=1'],
  ['--blockdev', '{"driver":"null-co","node-name":"a","x":1}'],
  ['--blockdev', 'null-co,node-name=a', '--blockdev', 'null-co,node-name=a'],
  ['--object', 'foo,id=x'],
  ['--bogus'],
  ['foo'],
];

describe('blockgraph daemon', () => {
  it("refuses bad command lines with qemu-storage-daemon's messages", async () => {
    const results = await Promise.all(
      REFUSED.map(async (args) => {
        const [[code, stderr], qsd] = await Promise.all([refused(args), run('qemu-storage-daemon', args)]);
        return {
          args,
          ours: [code, stderr.replace(/^blockgraph: /, '')],
          qsd: [qsd.code, qsd.stderr.replace(/^qemu-storage-daemon: /, '')],
        };
      }),
    );
    for (const r of results) expect(r.ours, r.args.join(' ')).toEqual(r.qsd);
  });

  it('serves QMP on stdio, pretty-printed on request, with the nodes of --blockdev', async () => {
    const input = [
      '{"execute": "qmp_capabilities"}',
      '{"execute": "query-named-block-nodes", "arguments": {"flat": true}, "id": 1}',
      '{"execute": "quit"}',
    ].join('\n');
    const args = [
      '--blockdev',
      'null-co,node-name=n0,size=1048576',
      '--blockdev',
      '{"driver": "raw", "node-name": "r0", "file": "n0"}',
      '--chardev',
      'stdio,id=m0',
      '--monitor',
      'chardev=m0,pretty=on',
    ];
    const { code, stdout, stderr } = await daemon(args, input);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toMatch(/^\{\n {4}"QMP": \{\n/);
    const messages: unknown[] = [];
    new JsonStream((m) => messages.push(m)).feed(stdout);
    expect(messages).toHaveLength(5); // greeting, capabilities, query, SHUTDOWN, quit
    const nodes = (messages[2] as { value: { return: { 'node-name': string; image: object }[] } }).value
      .return;
    expect(nodes.map((n) => n['node-name'])).toEqual(['r0', 'n0']);
    expect(nodes[0].image).toMatchObject({ 'virtual-size': 1 << 20, format: 'raw' });
  });

  it('exits when its stdio monitor reaches end of input', async () => {
    const { code, stdout } = await daemon(
      ['--chardev', 'stdio,id=m0', '--monitor', 'chardev=m0'],
      '{"execute": "qmp_capa',
    );
    expect(code).toBe(0);
    expect(stdout.trim().split('\n')).toHaveLength(1); // only the greeting: the half message is dropped
  });
});
