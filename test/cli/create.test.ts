/**
 * `blockgraph create` against `qemu-img create` 7.2: for each command line, run in two fresh
 * directories, the same stdout (the Formatting line, key order included), stderr (after the
 * program name), exit code, and byte-identical files.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { run as runConvert } from '../../src/cli/convert.ts';
import { run } from '../../src/cli/create.ts';
import { normalized, runOurs, runTool, tempDir } from './helpers.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

let serial = 0;
/** Two fresh directories, each holding a base image `base.qcow2` (1 MiB) and `base.raw`. */
function dirs(): [string, string] {
  const pair = ['ref', 'ours'].map((side) => {
    const dir = join(tmp.dir, `${serial}-${side}`);
    mkdirSync(dir);
    runTool('qemu-img', ['create', '-q', '-f', 'qcow2', 'base.qcow2', '1M'], dir);
    runTool('qemu-img', ['create', '-q', '-f', 'raw', 'base.raw', '3M'], dir);
    return dir;
  });
  serial++;
  return pair as [string, string];
}

const LINES: string[][] = [
  ['-f', 'qcow2', 'a.qcow2', '1G'],
  ['-f', 'qcow2', '-o', 'cluster_size=4k,compat=0.10', 'a.qcow2', '100M'],
  ['-f', 'qcow2', '-o', 'lazy_refcounts=on,refcount_bits=8', '-o', 'extended_l2=on', 'a.qcow2', '10M'],
  ['-f', 'qcow2', '-o', 'preallocation=metadata,compression_type=zstd', 'a.qcow2', '10M'],
  ['-f', 'qcow2', '-o', 'preallocation=full', 'a.qcow2', '2M'],
  ['-f', 'qcow2', '-o', 'data_file=a.raw,data_file_raw=on', 'a.qcow2', '10M'],
  ['-f', 'qcow2', '-o', 'data_file=a.raw', 'a.qcow2', '10M'],
  ['-f', 'qcow2', '-o', 'compat=v2,compat=1.1', 'a.qcow2', '1000'],
  ['-f', 'qcow2', '-o', 'lazy_refcounts', 'a.qcow2', '1.5k'],
  ['-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', 'a.qcow2'],
  ['-f', 'qcow2', '-b', 'base.raw', '-F', 'raw', 'a.qcow2', '5M'],
  ['-f', 'qcow2', '-b', 'base.qcow2', 'a.qcow2'],
  ['-f', 'qcow2', '-b', 'nonexist', '-F', 'qcow2', 'a.qcow2'],
  ['-f', 'qcow2', '-b', 'nonexist', '-F', 'qcow2', '-u', 'a.qcow2', '1M'],
  ['-f', 'qcow2', '-b', 'nonexist', '-u', 'a.qcow2', '1M'],
  ['-f', 'qcow2', '-b', 'base.raw', '-F', 'qcow2', 'a.qcow2'],
  ['-f', 'qcow2', '-b', 'a.qcow2', '-F', 'qcow2', 'a.qcow2', '1M'],
  ['-f', 'qcow2', '-o', 'backing_file=', 'a.qcow2', '1M'],
  ['-f', 'qcow2', '-F', 'qcow2', 'a.qcow2', '1M'],
  ['-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', '-o', 'preallocation=metadata', 'a.qcow2'],
  ['-q', '-f', 'qcow2', 'a.qcow2', '1M'],
  ['-f', 'qcow2', 'a.qcow2'],
  ['-f', 'qcow2', 'a.qcow2', 'abc'],
  ['-f', 'qcow2', 'a.qcow2', '8E'],
  ['-f', 'qcow2', 'a.qcow2', '1M', '2M'],
  ['-f', 'qcow2'],
  ['-f', 'bogus', 'a.qcow2', '1M'],
  ['-f', 'qcow2', '-o', 'bogus=1', 'a.qcow2', '1M'],
  ['-f', 'qcow2', '-o', 'size=2M', 'a.qcow2', '3M'],
  ['-f', 'qcow2', '-o', 'size=2M', 'a.qcow2'],
  ['-f', 'qcow2', '-o', 'cluster_size=1000', 'a.qcow2', '1M'],
  ['-f', 'qcow2', '-o', 'cluster_size=abc', 'a.qcow2', '1M'],
  ['-f', 'qcow2', '-o', 'refcount_bits=abc', 'a.qcow2', '1M'],
  ['-f', 'qcow2', '-o', 'lazy_refcounts=maybe', 'a.qcow2', '1M'],
  ['-f', 'qcow2', '-o', 'compat=2,compression_type=foo', 'a.qcow2', '1M'],
  ['-f', 'qcow2', '-o', 'compression_type=foo', 'a.qcow2', '1M'],
  ['-f', 'qcow2', '-o', 'preallocation=bogus', 'a.qcow2', '1M'],
  ['-f', 'qcow2', '-o', 'compat=0.10,lazy_refcounts=on', 'a.qcow2', '1M'],
  ['-f', 'qcow2', '-o', 'data_file_raw=on', 'a.qcow2', '1M'],
  ['-f', 'qcow2', 'nodir/a.qcow2', '1M'],
  ['a.raw', '10M'],
  ['-f', 'raw', '-o', 'preallocation=full', 'a.raw', '1M'],
  ['-f', 'raw', '-o', 'preallocation=metadata', 'a.raw', '1M'],
  ['-f', 'raw', '-o', 'preallocation=xx', 'a.raw', '1M'],
  ['-f', 'raw', '-o', 'cluster_size=4k', 'a.raw', '1M'],
  ['-f', 'raw', '-b', 'base.qcow2', '-F', 'qcow2', 'a.raw', '1M'],
  ['-f', 'qcow2', '-o', 'help'],
  ['-f', 'raw', '-o', '?'],
  ['-f', 'qcow2', '-o', 'help', 'a.qcow2'],
];

const FILES = ['a.qcow2', 'a.raw'];

/** `-o help` without the options blockgraph does not support: encryption, nocow, extent_size_hint. */
function withoutUnsupported<T extends { stdout: string }>(o: T): T {
  const unsupported = /^ {2}(encrypt[.=]|encryption=|nocow=|extent_size_hint=).*\n/gm;
  return { ...o, stdout: o.stdout.replace(unsupported, '') };
}

describe('blockgraph create', () => {
  it.each(LINES.map((l) => [l.join(' '), l]))('create %s', async (_, args) => {
    const [refDir, ourDir] = dirs();
    const ref = withoutUnsupported(normalized(runTool('qemu-img', ['create', ...args], refDir)));
    const ours = await runOurs(run, args, ourDir);
    expect(ours).toEqual(ref);
    for (const name of FILES) {
      const [r, o] = [join(refDir, name), join(ourDir, name)];
      expect(existsSync(o)).toBe(existsSync(r));
      if (existsSync(r)) expect(spawnSync('cmp', [r, o]).status, name).toBe(0);
    }
    if (ours.status === 0 && existsSync(join(ourDir, 'a.qcow2'))) {
      const info = (dir: string) =>
        JSON.parse(runTool('qemu-img', ['info', '--output=json', 'a.qcow2'], dir).stdout) as Record<
          string,
          unknown
        >;
      const { 'actual-size': _a, ...mine } = info(ourDir);
      const { 'actual-size': _b, ...theirs } = info(refDir);
      expect(mine).toEqual(theirs);
      const check = (dir: string) => runTool('qemu-img', ['check', 'a.qcow2'], dir);
      expect(normalized(check(ourDir))).toEqual(normalized(check(refDir)));
    }
  });

  it('convert -O qcow2 creates its target as qemu-img does: same header cluster, same content', async () => {
    const [refDir, ourDir] = dirs();
    for (const dir of [refDir, ourDir]) {
      runTool('qemu-io', ['-f', 'qcow2', '-c', 'write -P 7 64k 200k', 'base.qcow2'], dir);
    }
    runTool('qemu-img', ['convert', '-O', 'qcow2', 'base.qcow2', 'a.qcow2'], refDir);
    expect((await runOurs(runConvert, ['-O', 'qcow2', 'base.qcow2', 'a.qcow2'], ourDir)).status).toBe(0);
    const head = (dir: string) => spawnSync('head', ['-c', '65536', join(dir, 'a.qcow2')]).stdout;
    expect(Buffer.compare(head(ourDir), head(refDir))).toBe(0);
    expect(runTool('qemu-img', ['compare', 'base.qcow2', 'a.qcow2'], ourDir).status).toBe(0);
    expect(runTool('qemu-img', ['check', 'a.qcow2'], ourDir).status).toBe(0);
  });
});
