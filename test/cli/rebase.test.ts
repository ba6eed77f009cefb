/**
 * `blockgraph rebase` next to `qemu-img rebase` (QEMU 7.2) on twin overlays: safe mode keeps the
 * content (`qemu-img compare` with the image before), writes the same ranges as qemu-img and
 * records the same backing file; -u only rewrites the header — byte-identical to qemu-img's;
 * the errors read the same.
 */
import { copyFileSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../src/cli/rebase.ts';
import { mustRunIn, normalized, runOurs, runTool, tempDir } from './helpers.ts';

const tmp = tempDir();
afterAll(tmp.cleanup);

const must = mustRunIn(tmp.dir);

beforeAll(() => {
  must('qemu-img', ['create', '-q', '-f', 'qcow2', 'b1.qcow2', '4M']);
  must('qemu-io', ['-f', 'qcow2', '-c', 'write -P 1 0 1M', '-c', 'write -P 9 3M 1k', 'b1.qcow2']);
  must('qemu-img', ['create', '-q', '-f', 'qcow2', 'b2.qcow2', '2M']);
  must('qemu-io', ['-f', 'qcow2', '-c', 'write -P 2 512k 1M', '-c', 'write -P 1 0 4k', 'b2.qcow2']);
  must('qemu-img', ['create', '-q', '-f', 'raw', 'b3.raw', '4M']);
  must('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', 'b1.qcow2', '-F', 'qcow2', 't.qcow2']);
  must('qemu-io', ['-f', 'qcow2', '-c', 'write -P 3 2M 64k', '-c', 'write -P 4 700k 1k', 't.qcow2']);
});

/** Where the image itself (without its backing file) holds what. */
function ownMap(name: string): unknown {
  const opts = `driver=qcow2,file.filename=${name},backing=`;
  return JSON.parse(must('qemu-img', ['map', '--output=json', '--image-opts', opts])).map(
    ({ offset: _, ...e }: Record<string, unknown>) => e,
  );
}

const backing = (name: string) => {
  const i = JSON.parse(must('qemu-img', ['info', '--output=json', '-U', name]));
  return [i['backing-filename'], i['backing-filename-format']];
};

async function both(args: string[]) {
  copyFileSync(tmp.path('t.qcow2'), tmp.path('theirs.qcow2'));
  copyFileSync(tmp.path('t.qcow2'), tmp.path('ours.qcow2'));
  const q = normalized(runTool('qemu-img', ['rebase', ...args, 'theirs.qcow2'], tmp.dir));
  const o = normalized(await runOurs(run, [...args, 'ours.qcow2'], tmp.dir));
  return { q, o };
}

describe('blockgraph rebase matches qemu-img rebase', () => {
  it.each([
    [['-b', 'b2.qcow2', '-F', 'qcow2']],
    [['-b', 'b3.raw', '-F', 'raw']],
    [['-b', '']],
    [['-q', '-f', 'qcow2', '-b', 'b2.qcow2', '-F', 'qcow2']],
  ])('safe %j: same content, same writes, same backing file', async (args) => {
    const { q, o } = await both(args);
    expect(o).toEqual(q);
    expect(q.status).toBe(0);
    expect(runTool('qemu-img', ['check', 'ours.qcow2'], tmp.dir).status).toBe(0);
    expect(runTool('qemu-img', ['compare', 'ours.qcow2', 't.qcow2'], tmp.dir).stdout).toBe(
      'Images are identical.\n',
    );
    expect(ownMap('ours.qcow2')).toEqual(ownMap('theirs.qcow2'));
    expect(ownMap('ours.qcow2')).not.toEqual(ownMap('t.qcow2'));
    expect(backing('ours.qcow2')).toEqual(backing('theirs.qcow2'));
  });

  it.each([
    [['-u', '-b', 'b2.qcow2', '-F', 'qcow2']],
    [['-u', '-b', 'missing.qcow2', '-F', 'qcow2']],
    [['-u', '-b', '']],
    [['-u', '-b', 'a-much-longer-backing-file-name-than-before.qcow2', '-F', 'raw']],
  ])('unsafe %j: the same header bytes as qemu-img', async (args) => {
    const { q, o } = await both(args);
    expect(o).toEqual(q);
    expect(q.status).toBe(0);
    expect(readFileSync(tmp.path('ours.qcow2')).equals(readFileSync(tmp.path('theirs.qcow2')))).toBe(true);
    expect(readFileSync(tmp.path('ours.qcow2')).equals(readFileSync(tmp.path('t.qcow2')))).toBe(false);
  });

  it('-p ends with the 100% line', async () => {
    const { q, o } = await both(['-p', '-b', 'b2.qcow2', '-F', 'qcow2']);
    expect(o.stdout.endsWith('    (100.00/100%)\r\n')).toBe(true);
    expect(q.stdout.endsWith('    (100.00/100%)\r\n')).toBe(true);
  });

  it.each([
    [['-b', 'b2.qcow2']],
    [['-u', '-b', 'b2.qcow2']],
    [[]],
    [['-b', 'missing.qcow2', '-F', 'qcow2']],
    [['-b', 'b2.qcow2', '-F', 'qcow2', 'extra.qcow2']],
    [['--bogus']],
  ])('fails like qemu-img for %j', async (args) => {
    const { q, o } = await both(args);
    expect(o).toEqual(q);
    expect(q.status).toBe(1);
    expect(backing('ours.qcow2')).toEqual(backing('theirs.qcow2'));
    expect(runTool('qemu-img', ['compare', 'ours.qcow2', 'theirs.qcow2'], tmp.dir).status).toBe(0);
  });
});
