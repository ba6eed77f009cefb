/**
 * blockdev-create over an in-process QMP monitor: QEMU 7.2's argument errors, the job (answers
 * `{}` at once, concludes, keeps its `error` for query-jobs until job-dismiss) with the event
 * sequence and query-jobs output captured from qemu-system-x86_64 7.2, images identical to
 * qemu-img's, and runJobCommand turning the concluded job's error into a throw.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { BlockGraph } from '../../src/graph/graph.ts';
import { runJobCommand } from '../../src/jobs/job-command.ts';
import { QmpMonitor } from '../../src/qmp/monitor.ts';
import { tempDir } from '../cli/helpers.ts';

type Message = Record<string, unknown>;
const tmp = tempDir();
afterAll(() => tmp.cleanup());

/**
 * A negotiated session: `raw` answers with the command's response message, `execute` with its
 * return value (throwing its error's desc); `statuses` collects the JOB_STATUS_CHANGE statuses.
 */
async function connect() {
  const monitor = new QmpMonitor((emit) => new BlockGraph(emit));
  const lines: string[] = [];
  const statuses: string[] = [];
  const session = monitor.connect((text) => lines.push(text));
  const raw = async (execute: string, args?: Message): Promise<Message> => {
    session.feed(`${JSON.stringify({ execute, ...(args && { arguments: args }) })}\n`);
    await session.idle();
    const messages = lines.splice(0).map((l) => JSON.parse(l) as Message);
    for (const m of messages) {
      if (m.event === 'JOB_STATUS_CHANGE') statuses.push((m.data as { status: string }).status);
    }
    return messages.at(-1)!;
  };
  const execute = async (command: string, args?: Message): Promise<unknown> => {
    const answer = await raw(command, args);
    if (answer.error) throw new Error((answer.error as { desc: string }).desc);
    return answer.return;
  };
  await raw('qmp_capabilities');
  return { raw, execute, statuses };
}

const err = (desc: string) => ({ error: { class: 'GenericError', desc } });

describe('blockdev-create', () => {
  it('file, then qcow2 into it: the events of a successful job, qemu-img’s bytes', async () => {
    const { execute, statuses } = await connect();
    const path = tmp.path('q.qcow2');
    await runJobCommand(execute, 'blockdev-create', {
      'job-id': 'j1',
      options: { driver: 'file', filename: path, size: 0 },
    });
    expect(statuses).toEqual(['created', 'running', 'waiting', 'pending', 'concluded', 'null']);
    await execute('blockdev-add', { driver: 'file', filename: path, 'node-name': 'f1' });
    await runJobCommand(execute, 'blockdev-create', {
      'job-id': 'j2',
      options: { driver: 'qcow2', file: 'f1', size: 1 << 20, 'cluster-size': 4096, 'lazy-refcounts': true },
    });
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
    expect(await execute('query-jobs')).toEqual([]);
  });

  it('answers at once and leaves the concluded job, its error and progress for job-dismiss', async () => {
    const { raw, execute, statuses } = await connect();
    const options = { driver: 'file', filename: '/nonexist/x', size: 1 << 20 };
    expect(await raw('blockdev-create', { 'job-id': 'j1', options })).toEqual({ return: {} });
    while (!statuses.includes('concluded')) {
      await new Promise((r) => setTimeout(r, 1));
      await raw('query-jobs'); // delivers the events so far
    }
    // qemu-system-x86_64 7.2, the same commands: the job's events and query-jobs' answer.
    expect(statuses).toEqual(['created', 'running', 'aborting', 'concluded']);
    expect(await execute('query-jobs')).toEqual([
      {
        'current-progress': 1,
        status: 'concluded',
        'total-progress': 1,
        type: 'create',
        id: 'j1',
        error: "Could not create '/nonexist/x': No such file or directory",
      },
    ]);
    expect(await raw('blockdev-create', { 'job-id': 'j1', options })).toEqual(
      err("Job ID 'j1' already in use"),
    );
    expect(await raw('job-dismiss', { id: 'j1' })).toEqual({ return: {} });
    expect(statuses.at(-1)).toBe('null');
    expect(await execute('query-jobs')).toEqual([]);
    expect(await raw('job-dismiss', { id: 'j1' })).toEqual(err('Job not found'));
  });

  it('an inline file reference is opened for the job and closed after it', async () => {
    const { execute } = await connect();
    const path = tmp.path('inline.qcow2');
    const file = { driver: 'file', filename: path };
    await runJobCommand(execute, 'blockdev-create', { 'job-id': 'a', options: { ...file, size: 0 } });
    await runJobCommand(execute, 'blockdev-create', {
      'job-id': 'b',
      options: { driver: 'qcow2', file, size: 1 << 30 },
    });
    expect(spawnSync('qemu-img', ['check', path]).status).toBe(0);
    expect(await execute('query-named-block-nodes')).toEqual([]);
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
    [{ 'job-id': 'j', options: { driver: 'raw' } }, 'Driver does not support blockdev-create'],
  ])('refuses %j', async (args, text) => {
    const { raw, statuses } = await connect();
    expect(await raw('blockdev-create', args)).toEqual(err(text));
    expect(statuses).toEqual([]);
  });

  // Failures inside the job: QEMU's job error texts, after the aborting job's events.
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
  ])('job failure %j', async (options, text) => {
    const { execute, statuses } = await connect();
    await execute('blockdev-add', { driver: 'null-co', 'node-name': 'f1' });
    await expect(runJobCommand(execute, 'blockdev-create', { 'job-id': 'j', options })).rejects.toThrow(text);
    expect(statuses).toEqual(['created', 'running', 'aborting', 'concluded', 'null']);
  });
});
