/**
 * blockdev-create over an in-process QMP monitor: QEMU 7.2's argument errors, the job's
 * JOB_STATUS_CHANGE events around a synchronous run, images identical to qemu-img's, and the
 * job's error (what query-jobs would show in QEMU) as the command's error.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { BlockGraph } from '../../src/graph/graph.ts';
import { QmpMonitor } from '../../src/qmp/monitor.ts';
import { tempDir } from '../cli/helpers.ts';

type Message = Record<string, unknown>;
const tmp = tempDir();
afterAll(() => tmp.cleanup());

async function connect() {
  const monitor = new QmpMonitor((emit) => new BlockGraph(emit));
  const lines: string[] = [];
  const session = monitor.connect((text) => lines.push(text));
  const execute = async (execute: string, args?: Message): Promise<Message[]> => {
    session.feed(`${JSON.stringify({ execute, ...(args && { arguments: args }) })}\n`);
    await session.idle();
    return lines.splice(0).map((l) => JSON.parse(l) as Message);
  };
  lines.length = 0;
  await execute('qmp_capabilities');
  return execute;
}

/** Events reduced to their job status, and the final response. */
function summary(messages: Message[]): { statuses: unknown[]; last: Message } {
  const statuses = messages
    .filter((m) => m.event === 'JOB_STATUS_CHANGE')
    .map((m) => (m.data as { status: string; id: string }).status);
  return { statuses, last: messages.at(-1)! };
}

const err = (desc: string) => ({ error: { class: 'GenericError', desc } });

describe('blockdev-create', () => {
  it('file, then qcow2 into it: the events of a successful job, qemu-img’s bytes', async () => {
    const execute = await connect();
    const path = tmp.path('q.qcow2');
    const created = await execute('blockdev-create', {
      'job-id': 'j1',
      options: { driver: 'file', filename: path, size: 0 },
    });
    expect(summary(created)).toEqual({
      statuses: ['created', 'running', 'waiting', 'pending', 'concluded', 'null'],
      last: { return: {} },
    });
    await execute('blockdev-add', { driver: 'file', filename: path, 'node-name': 'f1' });
    const qcow2 = await execute('blockdev-create', {
      'job-id': 'j2',
      options: { driver: 'qcow2', file: 'f1', size: 1 << 20, 'cluster-size': 4096, 'lazy-refcounts': true },
    });
    expect(summary(qcow2).last).toEqual({ return: {} });
    spawnSync('qemu-img', [
      'create',
      '-q',
      '-f',
      'qcow2',
      '-o',
      'cluster_size=4k,lazy_refcounts=on',
      tmp.path('r.qcow2'),
      '1M',
    ]);
    expect(spawnSync('cmp', [path, tmp.path('r.qcow2')]).status).toBe(0);
  });

  it('an inline file reference is opened for the job and closed after it', async () => {
    const execute = await connect();
    const path = tmp.path('inline.qcow2');
    await execute('blockdev-create', { 'job-id': 'a', options: { driver: 'file', filename: path, size: 0 } });
    const out = await execute('blockdev-create', {
      'job-id': 'b',
      options: { driver: 'qcow2', file: { driver: 'file', filename: path }, size: 1 << 30 },
    });
    expect(summary(out).last).toEqual({ return: {} });
    expect(spawnSync('qemu-img', ['check', path]).status).toBe(0);
    expect((await execute('query-named-block-nodes')).at(-1)).toEqual({ return: [] });
  });

  // Argument errors QAPI reports before any job exists (captured from qemu-system-x86_64 7.2).
  it.each([
    [{ options: { driver: 'file', filename: '/x', size: 0 } }, "Parameter 'job-id' is missing"],
    [{ 'job-id': 'j', options: { driver: 'qcow2', file: 'f1' } }, "Parameter 'options.size' is missing"],
    [{ 'job-id': 'j', options: { driver: 'qcow2', size: 0 } }, "Parameter 'options.file' is missing"],
    [
      { 'job-id': 'j', options: { driver: 'qcow2', file: 'f', size: 0, version: 'v4' } },
      "Parameter 'version' does not accept value 'v4'",
    ],
    [{ 'job-id': 'j', options: { driver: 'raw', size: 0 } }, "Parameter 'options.size' is unexpected"],
  ])('refuses %j', async (args, text) => {
    const execute = await connect();
    const out = await execute('blockdev-create', args);
    expect(out).toEqual([err(text)]);
  });

  // Failures inside the job: QEMU's job error text, after the aborting job's events.
  it.each([
    [{ driver: 'qcow2', file: 'nope', size: 0 }, "Cannot find device='nope' nor node-name='nope'"],
    [{ driver: 'qcow2', file: 'f1', size: 1000 }, 'Image size must be a multiple of 512 bytes'],
    [
      { driver: 'qcow2', file: 'f1', size: 0, 'cluster-size': 1000 },
      'Cluster size must be a power of two between 512 and 2048k',
    ],
    [
      { driver: 'file', filename: '/nonexist/x', size: 0 },
      "Could not create '/nonexist/x': No such file or directory",
    ],
    [{ driver: 'raw' }, 'Driver does not support blockdev-create'],
  ])('job failure %j', async (options, text) => {
    const execute = await connect();
    await execute('blockdev-add', { driver: 'null-co', 'node-name': 'f1' });
    const out = await execute('blockdev-create', { 'job-id': 'j', options });
    expect(summary(out)).toEqual({
      statuses: ['created', 'running', 'aborting', 'concluded', 'null'],
      last: err(text),
    });
  });
});
