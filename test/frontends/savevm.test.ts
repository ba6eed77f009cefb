/**
 * savevm / loadvm / delvm over QMP (snapshot-save/-load/-delete jobs and human-monitor-command)
 * with a stand-in machine on two qcow2 drives: the disks and the machine state come back as
 * they were at savevm, the images pass `qemu-img check` and list the VM SIZE; QEMU 7.2's texts
 * (captured from qemu-system-x86_64 -M pc -qmp stdio); and a state that no longer belongs to
 * its disks is refused without changing anything.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { BlockBackend } from '../../src/block/backend.ts';
import { attachMachine, type SavevmMachine } from '../../src/frontends/savevm.ts';
import { BlockGraph } from '../../src/graph/graph.ts';
import { attachBackend } from '../../src/graph/drive.ts';
import { runJobCommand } from '../../src/jobs/job-command.ts';
import { QmpMonitor } from '../../src/qmp/monitor.ts';
import { tempDir } from '../cli/helpers.ts';

type Message = Record<string, unknown>;
const tmp = tempDir();
afterAll(() => tmp.cleanup());
const KiB = 1024;

/** A machine whose whole state is 64 KiB of "RAM", half of it zeros. */
class FakeMachine implements SavevmMachine {
  description = 'fake memory=64K';
  running = true;
  ram = new Uint8Array(64 * KiB);

  async pause(): Promise<void> {
    this.running = false;
  }
  async resume(): Promise<void> {
    this.running = true;
  }
  async saveState(): Promise<Uint8Array> {
    return this.ram.slice();
  }
  async restoreState(state: Uint8Array): Promise<void> {
    this.ram = state.slice();
  }
  vmClockNsec(): number {
    return 1_234_000_000;
  }
}

let serial = 0;

/** Two qcow2 drives d0, d1 (nodes n0, n1), a machine, and a QMP session on the graph. */
async function setup(sizes = ['4M', '2M']) {
  const monitor = new QmpMonitor((emit) => new BlockGraph(emit));
  const graph = monitor.graph;
  const lines: string[] = [];
  const session = monitor.connect((text) => lines.push(text));
  const execute = async (execute: string, args?: Message): Promise<Message[]> => {
    session.feed(`${JSON.stringify({ execute, ...(args && { arguments: args }) })}\n`);
    await session.idle();
    return lines.splice(0).map((l) => JSON.parse(l) as Message);
  };
  await execute('qmp_capabilities');
  const paths: string[] = [];
  const backends: BlockBackend[] = [];
  for (const [i, size] of sizes.entries()) {
    const path = tmp.path(`img${serial++}.qcow2`);
    spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', path, size]);
    const node = await graph.open({
      driver: 'qcow2',
      'node-name': `n${i}`,
      file: { driver: 'file', filename: path },
    });
    backends.push(await attachBackend(graph, `d${i}`, node, {}));
    paths.push(path);
  }
  const machine = new FakeMachine();
  machine.ram.fill(0x11, 0, 32 * KiB);
  attachMachine(graph, machine);
  /** An HMP command: its output, and the events it caused. */
  const hmp = async (line: string) => {
    const messages = await execute('human-monitor-command', { 'command-line': line });
    const events = messages.filter((m) => m.event).map((m) => m.event);
    return { out: messages.at(-1)!.return, events };
  };
  const close = async () => {
    for (const b of backends) await b.close();
  };
  return { graph, machine, backends, paths, execute, hmp, close };
}

async function readDisk(backend: BlockBackend, bytes = 64 * KiB): Promise<Uint8Array> {
  const buf = new Uint8Array(bytes);
  await backend.read(0, buf);
  return buf;
}

const fill = (byte: number) => new Uint8Array(64 * KiB).fill(byte);
const same = (a: Uint8Array, b: Uint8Array) => Buffer.compare(a, b) === 0;

function qemuImg(...args: string[]): { status: number | null; out: string } {
  const r = spawnSync('qemu-img', args, { encoding: 'utf8' });
  return { status: r.status, out: r.stdout + r.stderr };
}

function snapshotsOf(
  path: string,
): { name: string; 'vm-state-size': number; 'date-sec': number; 'date-nsec': number }[] {
  return JSON.parse(qemuImg('info', '--output=json', path).out).snapshots ?? [];
}

/** Job statuses and the final response of a snapshot-* job. */
/**
 * Runs a job command to its end as QEMU's clients do (runJobCommand: the answer, query-jobs until
 * concluded, job-dismiss): the job's statuses, the other events, and the outcome — `{return: {}}`
 * or the job's error as a command error would read.
 */
async function job(
  t: { execute: (c: string, a?: Message) => Promise<Message[]> },
  command: string,
  args: Message,
) {
  const messages: Message[] = [];
  const execute = async (c: string, a?: Message) => {
    const answer = await t.execute(c, a);
    messages.push(...answer);
    const last = answer.at(-1)!;
    if (last.error) throw new Error((last.error as { desc: string }).desc);
    return last.return;
  };
  const last = await runJobCommand(execute, command, args).then(
    () => ({ return: {} }),
    (e: Error) => err(e.message),
  );
  const statuses = messages
    .filter((m) => m.event === 'JOB_STATUS_CHANGE')
    .map((m) => (m.data as { status: string }).status);
  const events = messages.filter((m) => m.event && m.event !== 'JOB_STATUS_CHANGE').map((m) => m.event);
  return { statuses, events, last };
}

const err = (desc: string) => ({ error: { class: 'GenericError', desc } });
const FAILED = ['created', 'running', 'aborting', 'concluded', 'null'];
const DONE = ['created', 'running', 'waiting', 'pending', 'concluded', 'null'];

describe('savevm and loadvm', () => {
  it('bring back the disks and the machine of that moment; qemu-img sees the snapshots', async () => {
    const t = await setup();
    await t.backends[0]!.write(0, fill(0xa0));
    await t.backends[1]!.write(0, fill(0xb0));
    expect(await t.hmp('savevm s1')).toEqual({ out: '', events: ['STOP', 'RESUME'] });
    expect(t.machine.running).toBe(true);
    await t.backends[0]!.write(0, fill(0xa1));
    await t.backends[1]!.write(0, fill(0xb1));
    t.machine.ram.fill(0x22);

    expect(await t.hmp('loadvm s1')).toEqual({ out: '', events: ['STOP', 'RESUME'] });
    expect(t.machine.running).toBe(true);
    expect(same(await readDisk(t.backends[0]!), fill(0xa0))).toBe(true);
    expect(same(await readDisk(t.backends[1]!), fill(0xb0))).toBe(true);
    const ram = new Uint8Array(64 * KiB).fill(0x11, 0, 32 * KiB);
    expect(same(t.machine.ram, ram)).toBe(true);

    const { out } = await t.hmp('info snapshots');
    expect(out).toMatch(
      /^List of snapshots present on all disks:\r\nID {8}TAG {15}VM SIZE {16}DATE {5}VM CLOCK {5}ICOUNT\r\n-- {8}s1 +64\.\d KiB \d{4}-\d\d-\d\d \d\d:\d\d:\d\d 00:00:01\.234 {11}\r\n$/,
    );
    await t.close();
    for (const path of t.paths)
      expect(qemuImg('check', path)).toEqual({
        status: 0,
        out: expect.stringMatching(/No errors were found/),
      });
    const [a, b] = t.paths.map(snapshotsOf);
    expect(a!.map((s) => [s.name, s['vm-state-size'] > 64 * KiB])).toEqual([['s1', true]]);
    expect(b!.map((s) => [s.name, s['vm-state-size']])).toEqual([['s1', 0]]);
    expect([b![0]!['date-sec'], b![0]!['date-nsec']]).toEqual([a![0]!['date-sec'], a![0]!['date-nsec']]);
    expect(qemuImg('snapshot', '-l', t.paths[0]!).out).toMatch(/\n1 {9}s1 +64\.\d KiB /);
  });

  it('run as snapshot-save/-load/-delete jobs with QEMU 7.2’s checks and texts', async () => {
    const t = await setup();
    const args = { vmstate: 'n0', devices: ['n0', 'n1'] };
    expect(await job(t, 'snapshot-save', { 'job-id': 'j1', tag: 't1', ...args })).toEqual({
      statuses: DONE,
      events: ['STOP', 'RESUME'],
      last: { return: {} },
    });
    const refusals: [string, Message, string][] = [
      ['snapshot-save', { tag: 't1', ...args }, "Snapshot 't1' already exists in one or more devices"],
      [
        'snapshot-save',
        { tag: 't2', vmstate: 'nosuch', devices: ['n0'] },
        "vmstate block device 'nosuch' does not exist",
      ],
      [
        'snapshot-save',
        { tag: 't2', vmstate: 'n0', devices: ['n1'] },
        "vmstate block device 'n0' does not exist",
      ],
      ['snapshot-save', { tag: 't2', vmstate: 'n0', devices: ['nosuch'] }, "No block device node 'nosuch'"],
      [
        'snapshot-save',
        { tag: 't2', vmstate: 'n0', devices: [] },
        'At least one device is required for snapshot',
      ],
      [
        'snapshot-load',
        { tag: 'nosuch', ...args },
        "Snapshot 'nosuch' does not exist in one or more devices",
      ],
      [
        'snapshot-load',
        { tag: 't1', vmstate: 'n1', devices: ['n0', 'n1'] },
        'This is a disk-only snapshot. Revert to it  offline using qemu-img',
      ],
    ];
    for (const [command, a, text] of refusals) {
      const r = await job(t, command, { 'job-id': 'j2', ...a });
      expect([r.statuses, r.last]).toEqual([FAILED, err(text)]);
    }
    // A failed load leaves the machine stopped, as QEMU does; cont resumes it.
    expect(t.machine.running).toBe(false);
    expect((await t.execute('query-status')).at(-1)).toEqual({
      return: { running: false, singlestep: false, status: 'paused' },
    });
    expect((await job(t, 'snapshot-load', { 'job-id': 'j3', tag: 't1', ...args })).last).toEqual({
      return: {},
    });
    expect(t.machine.running).toBe(false);
    await t.execute('cont');
    expect(t.machine.running).toBe(true);
    expect((await t.execute('snapshot-save', { 'job-id': 'bad id', tag: 'x', ...args })).at(-1)).toEqual(
      err("Invalid job ID 'bad id'"),
    );
    expect((await t.execute('snapshot-save', { 'job-id': 'j4', tag: 'x', vmstate: 'n0' })).at(-1)).toEqual(
      err("Parameter 'devices' is missing"),
    );
    expect(
      (await job(t, 'snapshot-delete', { 'job-id': 'j5', tag: 'nosuch', devices: ['n0', 'n1'] })).last,
    ).toEqual({ return: {} });
    expect(
      (await job(t, 'snapshot-delete', { 'job-id': 'j6', tag: 't1', devices: ['n0', 'n1'] })).statuses,
    ).toEqual(DONE);
    expect((await t.hmp('info snapshots')).out).toBe('There is no snapshot available.\r\n');
    await t.close();
  });

  it('refuse a state whose disks changed since, and change nothing', async () => {
    const t = await setup();
    await t.backends[0]!.write(0, fill(0xa0));
    await t.hmp('savevm s1');
    await t.backends[0]!.write(0, fill(0xa1));
    t.machine.ram.fill(0x33);
    const unchanged = async () => {
      expect(same(await readDisk(t.backends[0]!), fill(0xa1))).toBe(true);
      expect(same(t.machine.ram, new Uint8Array(64 * KiB).fill(0x33))).toBe(true);
    };

    // d1's snapshot s1 taken again later (a disk-only one of the same name).
    await t.execute('blockdev-snapshot-delete-internal-sync', { device: 'n1', name: 's1' });
    await t.execute('blockdev-snapshot-internal-sync', { device: 'n1', name: 's1' });
    expect((await t.hmp('loadvm s1')).out).toBe(
      "Error: Snapshot 's1' on 'd1' was not taken with its VM state: the disk has changed since\r\n",
    );
    await unchanged();
    await t.execute('cont');

    // A subset of the devices it was saved with.
    await t.hmp('savevm s2');
    await t.backends[0]!.write(0, fill(0xa1));
    const subset = await job(t, 'snapshot-load', {
      'job-id': 'j',
      tag: 's2',
      vmstate: 'n0',
      devices: ['n0'],
    });
    expect(subset.last).toEqual(
      err("The VM state of snapshot 's2' was saved with the devices d0, d1, not d0"),
    );
    await unchanged();

    // Another machine configuration.
    t.machine.description = 'fake memory=128K';
    expect((await t.hmp('loadvm s2')).out).toBe(
      "Error: The VM state of snapshot 's2' is of another machine ('fake memory=64K', this one is 'fake memory=128K')\r\n",
    );
    await unchanged();
    t.machine.description = 'fake memory=64K';

    // A disk-only snapshot on every device.
    await t.execute('blockdev-snapshot-internal-sync', { device: 'n0', name: 'disk' });
    await t.execute('blockdev-snapshot-internal-sync', { device: 'n1', name: 'disk' });
    expect((await t.hmp('loadvm disk')).out).toBe(
      'Error: This is a disk-only snapshot. Revert to it  offline using qemu-img\r\n',
    );
    await unchanged();
    await t.close();
  });

  it('refuse the state real QEMU saved', async () => {
    const path = tmp.path('qemu.qcow2');
    spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', path, '4M']);
    const qmp = ['qmp_capabilities', 'human-monitor-command', 'quit'].map((execute) =>
      JSON.stringify({
        execute,
        ...(execute === 'human-monitor-command' && { arguments: { 'command-line': 'savevm qs' } }),
      }),
    );
    const machine = ['-M', 'pc', '-nodefaults', '-display', 'none', '-m', '16', '-qmp', 'stdio'];
    spawnSync('qemu-system-x86_64', [...machine, '-drive', `file=${path},format=qcow2,if=ide`], {
      input: qmp.join('\n'),
      timeout: 30_000,
    });
    const graph = new BlockGraph();
    const node = await graph.open({ driver: 'qcow2', file: { driver: 'file', filename: path } });
    const backend = await attachBackend(graph, 'ide0-hd0', node, {});
    const m = new FakeMachine();
    attachMachine(graph, m);
    const { loadVm } = await import('../../src/frontends/savevm.ts');
    await expect(loadVm(graph, { name: 'qs' })).rejects.toThrow(
      "The VM state of snapshot 'qs' on 'ide0-hd0' is not a blockgraph machine state (QEMU saved it)",
    );
    expect(m.ram.every((b) => b === 0)).toBe(true);
    await backend.close();
  });
});

describe('human-monitor-command', () => {
  it('parses and answers as QEMU’s monitor', async () => {
    const t = await setup();
    await t.execute('blockdev-snapshot-internal-sync', { device: 'n1', name: 'only1' });
    await t.hmp('savevm');
    const cases: [string, string][] = [
      ['loadvm', 'loadvm: string expected\r\nTry "help loadvm" for more information\r\n'],
      [
        'savevm a b',
        'savevm: extraneous characters at the end of line\r\nTry "help savevm" for more information\r\n',
      ],
      [
        'info snapshots x',
        'snapshots: extraneous characters at the end of line\r\nTry "help info snapshots" for more information\r\n',
      ],
      ['info snapshot', "unknown command: 'info snapshot'\r\n"],
      ['bogus', "unknown command: 'bogus'\r\n"],
      [
        'help savevm',
        'savevm tag -- save a VM snapshot. If no tag is provided, a new snapshot is created\r\n',
      ],
      ['help loadvm', 'loadvm tag -- restore a VM snapshot from its tag\r\n'],
      ['delvm nosuch', ''],
      ['loadvm only1', "Error: Snapshot 'only1' does not exist in one or more devices\r\n"],
      ['', ''],
    ];
    for (const [line, out] of cases) expect([line, (await t.hmp(line)).out]).toEqual([line, out]);
    const info = (await t.hmp('info snapshots')).out as string;
    expect(info).toMatch(
      /^List of snapshots present on all disks:\r\nID .*\r\n-- {8}vm-\d{14} +64\.\d KiB .*\r\n\r\n/,
    );
    expect(info).toMatch(
      /\r\nList of partial \(non-loadable\) snapshots on 'd1':\r\nID .*\r\n1 {9}only1 +0 B .*\r\n$/,
    );
    // A writable drive without snapshots makes savevm refuse, as QEMU does.
    const raw = await t.graph.open({ driver: 'null-co', size: 1 << 20, 'node-name': 'r2' });
    const backend = await attachBackend(t.graph, 'd2', raw, {});
    expect((await t.hmp('savevm s9')).out).toBe(
      "Error: Device 'd2' is writable but does not support snapshots\r\n",
    );
    await backend.close();
    await t.close();
  });
});
