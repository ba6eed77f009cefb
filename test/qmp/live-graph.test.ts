/**
 * blockdev-reopen, blockdev-snapshot(-sync), transaction and x-blockdev-replace over QMP. The
 * refusal scripts run against `qemu-system-x86_64 -M none -qmp stdio` and against an in-process
 * monitor, and every answer must match (error texts included); then the live changes run under
 * a write loop that must end equal to its shadow, with images `qemu-img check` calls clean.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { BlockBackend } from '../../src/block/backend.ts';
import { BlockGraph } from '../../src/graph/graph.ts';
import { QmpMonitor } from '../../src/qmp/monitor.ts';
import { tempDir } from '../cli/helpers.ts';
import { readAll, startWriteLoop } from '../graph/write-loop.ts';
import { QmpProcess, type Message } from './qmp-process.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());
const tool = (cmd: string, args: string[]) => spawnSync(cmd, args, { encoding: 'utf8' });

type Execute = (execute: string, args?: Message) => Promise<Message>;

/** An in-process monitor whose graph the test can reach (to attach drives and write loops). */
async function ours(): Promise<{ execute: Execute; graph: BlockGraph }> {
  let graph!: BlockGraph;
  const monitor = new QmpMonitor((emit) => (graph = new BlockGraph(emit)));
  const lines: string[] = [];
  const session = monitor.connect((text) => lines.push(text));
  const execute: Execute = async (execute, args) => {
    session.feed(`${JSON.stringify({ execute, ...(args && { arguments: args }) })}\n`);
    await session.idle();
    return JSON.parse(lines.splice(0).at(-1)!) as Message;
  };
  await execute('qmp_capabilities');
  return { execute, graph };
}

/**
 * QEMU's QMP over stdio. Its blockdev-snapshot-sync prints "Formatting ..." on stdout, so only
 * the JSON lines are passed on.
 */
async function qemu(extra: string[]): Promise<{ execute: Execute; quit: () => Promise<void> }> {
  const args = ['-M', 'none', '-nodefaults', '-display', 'none', '-qmp', 'stdio', ...extra];
  const command = `qemu-system-x86_64 ${args.map((a) => `'${a}'`).join(' ')} | grep --line-buffered '^{'`;
  const proc = new QmpProcess('sh', ['-c', command]);
  await proc.greeting();
  const execute: Execute = async (execute, args) =>
    (await proc.send(JSON.stringify({ execute, ...(args && { arguments: args }) }))).responses[0]!;
  await execute('qmp_capabilities');
  return {
    execute,
    quit: () =>
      execute('quit')
        .then(() => proc.exited)
        .then(() => {}),
  };
}

/** A fresh directory with the images the scripts use. */
function images(name: string): string {
  const dir = tmp.path(name);
  mkdirSync(dir);
  const img = (args: string[]) => expect(tool('qemu-img', ['create', '-q', ...args]).status).toBe(0);
  img(['-f', 'qcow2', `${dir}/base.qcow2`, '1M']);
  img(['-f', 'qcow2', `${dir}/b2.qcow2`, '1M']);
  img(['-f', 'qcow2', `${dir}/ov.qcow2`, '1M']);
  img(['-f', 'raw', `${dir}/ovr.raw`, '1M']);
  img(['-f', 'qcow2', '-b', `${dir}/b2.qcow2`, '-F', 'qcow2', `${dir}/ovb.qcow2`]);
  img(['-f', 'qcow2', '-b', `${dir}/base.qcow2`, '-F', 'qcow2', `${dir}/top.qcow2`]);
  return dir;
}

type Step = [string, Message?];

/** Runs `script` on both sides (paths under each side's own directory) and returns the answers. */
async function both(script: (dir: string) => Step[], drive: boolean): Promise<[Message[], Message[]]> {
  const theirDir = images(`qemu-${script.name}-${drive}`);
  const ourDir = images(`ours-${script.name}-${drive}`);
  const q = await qemu(drive ? ['-drive', `if=none,id=d0,file=${theirDir}/base.qcow2,node-name=base`] : []);
  const theirs: Message[] = [];
  try {
    for (const [cmd, args] of script(theirDir)) theirs.push(await q.execute(cmd, args));
  } finally {
    await q.quit();
  }
  const o = await ours();
  if (drive) {
    await o.execute('blockdev-add', {
      driver: 'qcow2',
      'node-name': 'base',
      file: { driver: 'file', filename: `${ourDir}/base.qcow2` },
    });
    new BlockBackend(o.graph, 'd0').insert(o.graph.lookup('base'));
  }
  const mine: Message[] = [];
  for (const [cmd, args] of script(ourDir)) mine.push(await o.execute(cmd, args));
  for (const node of [...o.graph.nodes.values()]) await node.close().catch(() => {});
  const neutral = (list: Message[], dir: string) =>
    list.map((m) => JSON.parse(JSON.stringify(m).replaceAll(dir, '@DIR@')) as Message);
  return [neutral(theirs, theirDir), neutral(mine, ourDir)];
}

const reopen = (...options: Message[]): Step => ['blockdev-reopen', { options }];

function reopenScript(dir: string): Step[] {
  const top = (extra: Message = {}) => ({ driver: 'qcow2', 'node-name': 'top', file: 'topf', ...extra });
  return [
    [
      'blockdev-add',
      {
        driver: 'qcow2',
        'node-name': 'top',
        file: { driver: 'file', filename: `${dir}/top.qcow2`, 'node-name': 'topf' },
      },
    ],
    ['blockdev-add', { driver: 'null-co', 'node-name': 'nul' }],
    ['blockdev-add', { driver: 'blkdebug', 'node-name': 'dbg', image: 'topf' }],
    reopen(top({ 'lazy-refcounts': true })),
    reopen({ driver: 'raw', 'node-name': 'top', file: 'topf' }),
    reopen(top({ backing: 'top' })),
    reopen(top({ backing: null, 'lazy-refcounts': true })),
    reopen(top()),
    reopen(top({ backing: null, file: 'zz' })),
    reopen(top({ backing: null, bogus: 1 })),
    reopen({ driver: 'qcow2', 'node-name': 'top', backing: null }),
    reopen({ driver: 'qcow2', file: 'topf' }),
    reopen(top({ 'node-name': 'zz' })),
    reopen(top({ backing: null, 'data-file': 'topf' })),
    reopen(top({ backing: null, 'force-share': true, 'read-only': true })),
    reopen({ driver: 'file', 'node-name': 'topf', filename: `${dir}/top.qcow2`, 'read-only': true }),
    reopen({ driver: 'file', 'node-name': 'topf', filename: `${dir}/base.qcow2` }),
    reopen({ driver: 'file', 'node-name': 'topf', filename: `${dir}/top.qcow2`, locking: 'off' }),
    reopen(top({ backing: null, 'read-only': true, cache: { direct: false, 'no-flush': true } })),
    reopen(top({ backing: null, 'detect-zeroes': 'on', discard: 'unmap' })),
    reopen(top({ backing: null, file: 'dbg' })),
    reopen(top({ backing: null, file: 'topf' })),
    reopen(top({ backing: 'nul' })),
    reopen(top({ backing: null })),
    reopen({ driver: 'null-co', 'node-name': 'nul', size: 5 }),
    reopen({ driver: 'null-co', 'node-name': 'nul', 'read-only': true }),
    reopen({ driver: 'blkdebug', 'node-name': 'dbg', image: 'nul' }),
    reopen({ driver: 'blkdebug', 'node-name': 'dbg', image: 'topf', align: 512 }),
    reopen({ driver: 'raw', 'node-name': 'dbg', file: 'topf' }),
  ];
}

function snapshotScript(dir: string): Step[] {
  const sync = (data: Message): Step => ['blockdev-snapshot-sync', data];
  const add = (name: string, driver: string, file: string) =>
    [
      'blockdev-add',
      { driver, 'node-name': name, file: { driver: 'file', filename: `${dir}/${file}` } },
    ] as Step;
  return [
    ['blockdev-snapshot', { node: 'zz', overlay: 'ov' }],
    add('ov', 'qcow2', 'ov.qcow2'),
    add('ovr', 'raw', 'ovr.raw'),
    add('ovb', 'qcow2', 'ovb.qcow2'),
    ['blockdev-snapshot', { node: 'base', overlay: 'zz' }],
    ['blockdev-snapshot', { node: 'base', overlay: 'ovb' }],
    ['blockdev-snapshot', { node: 'base', overlay: 'ovr' }],
    ['blockdev-snapshot', { node: 'base', overlay: 'base' }],
    ['blockdev-snapshot', { node: 'base' }],
    sync({ 'node-name': 'zz', 'snapshot-file': `${dir}/s.qcow2` }),
    sync({ 'snapshot-file': `${dir}/s.qcow2` }),
    sync({ 'node-name': 'base', 'snapshot-file': `${dir}/s.qcow2` }),
    sync({ 'node-name': 'base', 'snapshot-file': `${dir}/s.qcow2`, 'snapshot-node-name': 'ov' }),
    sync({ device: 'd0', 'snapshot-file': `${dir}/s.qcow2`, 'snapshot-node-name': 's0', format: 'raw' }),
    sync({
      device: 'd0',
      'snapshot-file': `${dir}/none.qcow2`,
      'snapshot-node-name': 's0',
      mode: 'existing',
    }),
    sync({ device: 'd0', 'snapshot-file': '/nonexistent/x.qcow2', 'snapshot-node-name': 's0' }),
    ['transaction', { actions: [{ type: 'bogus', data: {} }] }],
    ['transaction', { actions: [] }],
    [
      'transaction',
      {
        actions: [
          { type: 'blockdev-snapshot-internal-sync', data: { device: 'd0', name: 'x' } },
          {
            type: 'blockdev-snapshot-sync',
            data: { device: 'd0', 'snapshot-file': `${dir}/s1.qcow2`, 'snapshot-node-name': 's1' },
          },
          { type: 'abort', data: {} },
        ],
      },
    ],
    ['blockdev-snapshot-delete-internal-sync', { device: 'd0', name: 'x' }],
    ['blockdev-snapshot', { node: 'base', overlay: 'ov' }],
    ['blockdev-snapshot', { node: 'base', overlay: 'ov' }],
    [
      'transaction',
      {
        actions: [
          {
            type: 'blockdev-snapshot-sync',
            data: { device: 'd0', 'snapshot-file': `${dir}/s1.qcow2`, 'snapshot-node-name': 's1' },
          },
          {
            type: 'blockdev-snapshot-sync',
            data: { 'node-name': 'zz', 'snapshot-file': `${dir}/s2.qcow2`, 'snapshot-node-name': 's2' },
          },
        ],
      },
    ],
    sync({ device: 'd0', 'snapshot-file': `${dir}/s1.qcow2`, 'snapshot-node-name': 's1' }),
    ['blockdev-snapshot', { node: 'ov', overlay: 'ovr' }],
  ];
}

describe('QMP live graph commands answer as QEMU 7.2 does', () => {
  it('blockdev-reopen', async () => {
    const [theirs, mine] = await both(reopenScript, false);
    expect(mine).toEqual(theirs);
    // The script is not vacuous: it has successes and QEMU's refusals.
    expect(theirs.filter((m) => 'error' in m).length).toBeGreaterThan(15);
  });

  it('blockdev-snapshot, blockdev-snapshot-sync and transaction', async () => {
    const [theirs, mine] = await both(snapshotScript, true);
    expect(mine).toEqual(theirs);
    expect(theirs.filter((m) => 'return' in m).length).toBeGreaterThanOrEqual(6);
  });
});

describe('every live change under running write loops', () => {
  it('filters in and out, reopen, snapshots, a two-disk transaction, block_resize', async () => {
    const dir = tmp.path('loop');
    mkdirSync(dir);
    const { execute, graph } = await ours();
    const ok = async (cmd: string, args?: Message) =>
      expect(await execute(cmd, args)).toEqual({ return: {} });
    const names = async () =>
      ((await execute('query-named-block-nodes', { flat: true })).return as Message[])
        .map((n) => n['node-name'] as string)
        .filter((n) => !n.startsWith('#'))
        .sort();
    const drives = ['d0', 'd1'].map((id) => {
      const path = `${dir}/${id}.qcow2`;
      expect(tool('qemu-img', ['create', '-q', '-f', 'qcow2', path, '2M']).status).toBe(0);
      return { id, path };
    });
    const blks: BlockBackend[] = [];
    for (const { id, path } of drives) {
      await ok('blockdev-add', {
        driver: 'qcow2',
        'node-name': `${id}q`,
        file: { driver: 'file', 'node-name': `${id}f`, filename: path },
      });
      const blk = new BlockBackend(graph, id);
      blk.insert(graph.lookup(`${id}q`));
      blks.push(blk);
    }
    const loops = blks.map((blk, i) => startWriteLoop(blk, 100 + i));
    const busy = () => Promise.all(loops.map((l) => l.progress(10)));
    await busy();

    // A filter above the root of d0, and out again.
    await ok('blockdev-add', { driver: 'blkdebug', 'node-name': 'flt', image: 'd0q' });
    await ok('x-blockdev-replace', { parent: 'd0', 'new-child': 'flt' });
    expect(blks[0]!.root?.nodeName).toBe('flt');
    await busy();
    await ok('x-blockdev-replace', { parent: 'd0', 'new-child': 'd0q' });
    await ok('blockdev-del', { 'node-name': 'flt' });
    // A filter under the qcow2 node (blockdev-reopen file=), and out again.
    await ok('blockdev-add', { driver: 'blkdebug', 'node-name': 'flt2', image: 'd0f' });
    await ok('blockdev-reopen', { options: [{ driver: 'qcow2', 'node-name': 'd0q', file: 'flt2' }] });
    await busy();
    await ok('blockdev-reopen', {
      options: [
        { driver: 'qcow2', 'node-name': 'd0q', file: 'd0f', cache: { direct: false, 'no-flush': true } },
      ],
    });
    await ok('blockdev-del', { 'node-name': 'flt2' });
    expect(await names()).toEqual(['d0f', 'd0q', 'd1f', 'd1q']);

    // blockdev-snapshot-sync, then blockdev-snapshot with an overlay made by qemu-img.
    await ok('blockdev-snapshot-sync', {
      device: 'd0',
      'snapshot-file': `${dir}/s1.qcow2`,
      'snapshot-node-name': 's1',
    });
    await busy();
    const ov = `${dir}/ov.qcow2`;
    expect(
      tool('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', `${dir}/s1.qcow2`, '-F', 'qcow2', ov]).status,
    ).toBe(0);
    await ok('blockdev-add', {
      driver: 'qcow2',
      'node-name': 'ov',
      backing: null,
      file: { driver: 'file', filename: ov },
    });
    await ok('blockdev-snapshot', { node: 's1', overlay: 'ov' });
    await busy();
    // Both disks at one point in time.
    await ok('transaction', {
      actions: blks.map((blk, i) => ({
        type: 'blockdev-snapshot-sync',
        data: { device: blk.name, 'snapshot-file': `${dir}/t${i}.qcow2`, 'snapshot-node-name': `t${i}` },
      })),
    });
    await busy();
    expect(await names()).toEqual(['d0f', 'd0q', 'd1f', 'd1q', 'ov', 's1', 't0', 't1']);
    // A filter into a backing link below the active layer (blockdev-reopen backing=), and out.
    const ovFile = graph.lookup('ov').child('file')!.nodeName;
    const reopenOv = (backing: string) =>
      ok('blockdev-reopen', {
        options: [{ driver: 'qcow2', 'node-name': 'ov', file: ovFile, backing, 'read-only': true }],
      });
    await ok('blockdev-add', { driver: 'blkdebug', 'node-name': 'bflt', image: 's1' });
    await reopenOv('bflt');
    expect(graph.lookup('ov').child('backing')!.nodeName).toBe('bflt');
    await busy();
    await reopenOv('s1');
    await ok('blockdev-del', { 'node-name': 'bflt' });
    const nodes = (await execute('query-named-block-nodes')).return as Message[];
    const t0 = nodes.find((n) => n['node-name'] === 't0')!;
    expect(t0.backing_file_depth).toBe(3);
    expect(nodes.find((n) => n['node-name'] === 'd0q')!.ro).toBe(true);

    // block_resize of the running drive reaches its device through the new root.
    let resized = 0;
    blks[1]!.onResize(() => resized++);
    await ok('block_resize', { device: 'd1', size: 3 << 20 });
    expect(resized).toBe(1);
    expect(blks[1]!.length()).toBe(3 << 20);

    for (const [i, loop] of loops.entries()) {
      await loop.stop();
      const blk = blks[i]!;
      await blk.flush();
      const all = await readAll(blk);
      expect(Buffer.compare(all.subarray(0, loop.shadow.length), loop.shadow)).toBe(0);
      expect(all.subarray(loop.shadow.length).every((b) => b === 0)).toBe(true);
      writeFileSync(`${dir}/shadow${i}.raw`, all);
      await blk.close();
    }
    // Closing the drives released the overlays made by -sync (nobody else holds them).
    expect(await names()).toEqual(['d0f', 'd0q', 'd1f', 'd1q', 'ov', 's1']);
    for (const name of ['ov', 'd0q', 'd1q']) await ok('blockdev-del', { 'node-name': name });
    expect(graph.nodes.size).toBe(0);
    for (const image of ['d0', 'd1', 's1', 'ov', 't0', 't1']) {
      expect(tool('qemu-img', ['check', `${dir}/${image}.qcow2`]).status).toBe(0);
    }
    for (const i of [0, 1]) {
      const cmp = tool('qemu-img', ['compare', '-F', 'raw', `${dir}/t${i}.qcow2`, `${dir}/shadow${i}.raw`]);
      expect(cmp.stdout).toBe('Images are identical.\n');
    }
  });
});

describe('x-blockdev-replace', () => {
  it('refuses what it cannot do and leaves the graph as it was', async () => {
    const { execute, graph } = await ours();
    const mem = (name: string, extra: Message = {}) =>
      execute('blockdev-add', { driver: 'memory', 'node-name': name, size: 1 << 20, ...extra });
    await mem('m0');
    await mem('ro', { 'read-only': true });
    await execute('blockdev-add', { driver: 'raw', 'node-name': 'r0', file: 'm0' });
    new BlockBackend(graph, 'd0').insert(graph.lookup('r0'));
    const err = (desc: string) => ({ error: { class: 'GenericError', desc } });
    const replace = (args: Message) => execute('x-blockdev-replace', args);
    expect(await replace({ parent: 'zz', 'new-child': 'm0' })).toEqual(
      err("Cannot find device='zz' nor node-name='zz'"),
    );
    expect(await replace({ parent: 'd0', 'new-child': 'zz' })).toEqual(
      err("Cannot find device='zz' nor node-name='zz'"),
    );
    expect(await replace({ parent: 'd0', child: 'file', 'new-child': 'm0' })).toEqual(
      err("Drive 'd0' has no child named 'file'"),
    );
    expect(await replace({ parent: 'r0', child: 'backing', 'new-child': 'm0' })).toEqual(
      err("Node 'r0' has no child named 'backing'"),
    );
    expect(await replace({ parent: 'd0', 'new-child': 'ro' })).toEqual(err('Block node is read-only'));
    expect(await replace({ parent: 'r0', 'new-child': 'r0' })).toEqual(
      err("Making 'r0' a file child of 'r0' would create a cycle"),
    );
    expect(graph.backends.get('d0')!.root?.nodeName).toBe('r0');
    expect(graph.lookup('r0').child('file')?.nodeName).toBe('m0');
    // And what it can: the drive's root becomes the bare memory node; then a larger one, which
    // its device hears of as a resize (virtio-blk: a capacity change).
    const blk = graph.backends.get('d0')!;
    let resized = 0;
    blk.onResize(() => resized++);
    expect(await replace({ parent: 'd0', 'new-child': 'm0' })).toEqual({ return: {} });
    expect([blk.root?.nodeName, resized]).toEqual(['m0', 0]);
    await mem('m2', { size: 2 << 20 });
    expect(await replace({ parent: 'd0', 'new-child': 'm2' })).toEqual({ return: {} });
    expect([blk.length(), resized]).toEqual([2 << 20, 1]);
  });
});
