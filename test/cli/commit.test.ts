/**
 * `blockgraph commit` next to `qemu-img commit` (QEMU 7.2) on twin three-layer chains
 * (base ← mid ← top): afterwards every layer of ours reads the same as the same layer of
 * qemu-img's, passes `qemu-img check`, and the top is emptied (or kept with -d / -b) as
 * qemu-img does; the errors read the same.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { run } from '../../src/cli/commit.ts';
import { mustRunIn, normalized, runOurs, runTool, tempDir } from './helpers.ts';

const tmp = tempDir();
afterAll(tmp.cleanup);

const must = mustRunIn(tmp.dir);

/** base (1 MiB of 1s, 3 MiB) ← mid (64k of 2s) ← top (4 MiB: data, zeros, data past base's end). */
function chain(p: string): void {
  must('qemu-img', ['create', '-q', '-f', 'qcow2', `${p}base.qcow2`, '3M']);
  must('qemu-io', ['-f', 'qcow2', '-c', 'write -P 1 0 1M', `${p}base.qcow2`]);
  must('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', `${p}base.qcow2`, '-F', 'qcow2', `${p}mid.qcow2`]);
  must('qemu-io', ['-f', 'qcow2', '-c', 'write -P 2 512k 64k', `${p}mid.qcow2`]);
  must('qemu-img', [
    'create',
    '-q',
    '-f',
    'qcow2',
    '-b',
    `${p}mid.qcow2`,
    '-F',
    'qcow2',
    `${p}top.qcow2`,
    '4M',
  ]);
  const writes = ['write -P 3 1M 64k', 'write -z 0 64k', 'write -P 4 3M 1k', 'write -P 5 700k 3k'];
  must('qemu-io', ['-f', 'qcow2', ...writes.flatMap((w) => ['-c', w]), `${p}top.qcow2`]);
}

/** Each layer's own content (without its backing file) and the top's allocation map. */
function state(p: string) {
  // Without host offsets, adjacent entries that then look alike are merged.
  const own = (name: string) => {
    const opts = `driver=qcow2,file.filename=${p}${name},backing=`;
    const map = JSON.parse(must('qemu-img', ['map', '--output=json', '--image-opts', opts]));
    const merged: Record<string, unknown>[] = [];
    for (const { offset: _, ...e } of map) {
      const last = merged.at(-1);
      const same = last && ['depth', 'present', 'zero', 'data'].every((k) => last[k] === e[k]);
      if (same) last.length = (last.length as number) + e.length;
      else merged.push(e);
    }
    return merged;
  };
  return { top: own('top.qcow2'), mid: own('mid.qcow2'), base: own('base.qcow2') };
}

async function both(args: string[]) {
  chain('q-');
  chain('o-');
  const q = normalized(runTool('qemu-img', ['commit', ...args, 'q-top.qcow2'], tmp.dir));
  const o = normalized(
    await runOurs(run, [...args.map((a) => a.replace('q-', 'o-')), 'o-top.qcow2'], tmp.dir),
  );
  return { q, o };
}

function expectSameLayers(): void {
  for (const layer of ['top', 'mid', 'base']) {
    const cmp = runTool('qemu-img', ['compare', `o-${layer}.qcow2`, `q-${layer}.qcow2`], tmp.dir);
    expect(cmp.stdout, layer).toBe('Images are identical.\n');
    expect(runTool('qemu-img', ['check', `o-${layer}.qcow2`], tmp.dir).status, layer).toBe(0);
  }
  expect(state('o-')).toEqual(state('q-'));
}

describe('blockgraph commit matches qemu-img commit', () => {
  it.each([[[]], [['-d']], [['-q']], [['-b', 'q-base.qcow2']], [['-f', 'qcow2', '-b', 'q-mid.qcow2', '-d']]])(
    'commit %j',
    async (args) => {
      const { q, o } = await both(args);
      expect(o).toEqual(q);
      expect(q.status).toBe(0);
      expectSameLayers();
    },
  );

  it('-p prints progress up to 100% before "Image committed."', async () => {
    const { q, o } = await both(['-p']);
    expect(o.stdout.endsWith('    (100.00/100%)\r\nImage committed.\n')).toBe(true);
    expect(q.stdout.endsWith('    (100.00/100%)\r\nImage committed.\n')).toBe(true);
    expectSameLayers();
  });

  it.each([[['-b', 'nope.qcow2']], [['q-top.qcow2']], [['--bogus']]])(
    'fails like qemu-img for %j',
    async (args) => {
      const { q, o } = await both(args);
      expect(o).toEqual({ ...q, stderr: q.stderr.replaceAll('q-top', 'o-top') });
      expect(q.status).toBe(1);
      expectSameLayers();
    },
  );

  it('refuses an image without a backing file', async () => {
    chain('n-');
    const q = normalized(runTool('qemu-img', ['commit', 'n-base.qcow2'], tmp.dir));
    const o = normalized(await runOurs(run, ['n-base.qcow2'], tmp.dir));
    expect(o).toEqual(q);
  });
});
