/**
 * `blockgraph convert -c` next to `qemu-img convert -c` (QEMU 7.2) on the same sources: the
 * same clusters end up compressed, plain (did not shrink) or unallocated (all zeros), as
 * `qemu-img map` shows them; the content equals the source (`qemu-img compare`); every image
 * passes `qemu-img check`; `qemu-img info` reports the compression type; the errors read the
 * same. The sizes of both outputs are printed for the record (only bounded, never timed).
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../src/cli/convert.ts';
import { mustRunIn, normalized, runOurs, runTool, tempDir } from './helpers.ts';

const tmp = tempDir();
afterAll(tmp.cleanup);

const must = mustRunIn(tmp.dir);

/** xorshift32 bytes: incompressible. */
function noise(len: number, seed: number): Uint8Array {
  let s = seed;
  return Uint8Array.from({ length: len }, () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s & 0xff;
  });
}

beforeAll(() => {
  // Text, an incompressible cluster, a zero cluster inside data, a hole, a partial last cluster.
  const size = 3 * 65536 * 4 + 7 * 512;
  const src = new Uint8Array(size);
  const line = new TextEncoder().encode('blockgraph convert -c: a qcow2 cluster of text\n');
  for (let i = 0; i < 5 * 65536; i++) src[i] = line[i % line.length] ^ (i >> 12 === 9 ? 1 : 0);
  src.set(noise(65536, 7), 5 * 65536);
  src.fill(0, 6 * 65536, 7 * 65536);
  src.fill(0x5a, 7 * 65536, 7 * 65536 + 4096);
  src.set(line, size - 3000);
  writeFileSync(`${tmp.dir}/src.raw`, src);
  // Real-world data: the start of the qemu-img binary.
  writeFileSync(`${tmp.dir}/bin.raw`, readFileSync('/usr/bin/qemu-img').subarray(0, 3 << 20));
  // Whole clusters: a zero-write of a partial last cluster is another matter (qcow2 write-zeroes).
  must('qemu-img', ['create', '-q', '-f', 'qcow2', 'base.qcow2', '1M']);
  must('qemu-io', ['-f', 'qcow2', '-c', 'write -P 1 0 256k', 'base.qcow2']);
  must('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', 'top.qcow2']);
  must('qemu-io', ['-f', 'qcow2', '-c', 'write -P 2 64k 64k', '-c', 'write -P 3 512k 64k', 'top.qcow2']);
});

/** qemu-img map with host offsets reduced to "has one": a compressed cluster has none. */
function layout(name: string): unknown {
  const map = JSON.parse(must('qemu-img', ['map', '--output=json', name])) as Record<string, unknown>[];
  return map.map(({ offset, ...rest }) => ({ ...rest, plain: offset !== undefined }));
}

function checkReport(name: string): Record<string, number> {
  const r = runTool('qemu-img', ['check', '--output=json', name], tmp.dir);
  expect(r.status, r.stdout + r.stderr).toBe(0);
  const c = JSON.parse(r.stdout);
  expect(c['check-errors']).toBe(0);
  expect(c.corruptions ?? 0).toBe(0);
  expect(c.leaks ?? 0).toBe(0);
  return c;
}

/** Converts with qemu-img and with us; returns both outputs' names. */
async function both(args: string[], src: string, name: string): Promise<[string, string]> {
  must('qemu-img', ['convert', ...args, src, `q-${name}`]);
  const o = await runOurs(run, [...args, src, `o-${name}`], tmp.dir);
  expect(o, o.stderr).toMatchObject({ status: 0, stderr: '' });
  return [`q-${name}`, `o-${name}`];
}

describe('convert -c', () => {
  it.each([
    ['zlib', '64k'],
    ['zstd', '64k'],
    ['zstd', '4k'],
    ['zlib', '512'],
  ])('compression_type=%s, cluster_size=%s: as qemu-img lays it out', async (type, cs) => {
    const args = ['-c', '-O', 'qcow2', '-o', `compression_type=${type},cluster_size=${cs}`];
    const [q, o] = await both(args, 'src.raw', `${type}-${cs}.qcow2`);
    expect(layout(o)).toEqual(layout(q));
    expect(checkReport(o)['compressed-clusters']).toBe(checkReport(q)['compressed-clusters']);
    expect(runTool('qemu-img', ['compare', '-F', 'raw', o, 'src.raw'], tmp.dir).status).toBe(0);
    const info = JSON.parse(must('qemu-img', ['info', '--output=json', o]));
    expect(info['format-specific'].data['compression-type']).toBe(type);
    // qemu-img pads the file to a whole sector at the end (blk_pwrite_compressed(0, 0)).
    expect(statSync(`${tmp.dir}/${o}`).size % 512).toBe(0);
    const io = runTool('qemu-io', ['-c', `read -P 0x5a ${7 * 65536} 4k`, o], tmp.dir);
    expect(io.stdout).toMatch(/^read 4096\/4096 bytes/m);
  });

  it('-B keeps what the backing file provides, compresses the rest', async () => {
    const args = ['-c', '-O', 'qcow2', '-B', 'base.qcow2', '-F', 'qcow2'];
    const [q, o] = await both(args, 'top.qcow2', 'over.qcow2');
    expect(layout(o)).toEqual(layout(q));
    checkReport(o);
    expect(runTool('qemu-img', ['compare', o, 'top.qcow2'], tmp.dir).status).toBe(0);
  });

  it.each(['zlib', 'zstd'])('%s: about qemu-img convert -c size on a real binary', async (type) => {
    const args = ['-c', '-O', 'qcow2', '-o', `compression_type=${type}`];
    const [q, o] = await both(args, 'bin.raw', `bin-${type}.qcow2`);
    checkReport(o);
    expect(runTool('qemu-img', ['compare', '-F', 'raw', o, 'bin.raw'], tmp.dir).status).toBe(0);
    const ours = statSync(`${tmp.dir}/${o}`).size;
    const theirs = statSync(`${tmp.dir}/${q}`).size;
    console.log(`convert -c ${type} of 3 MiB of qemu-img: ours ${ours} bytes, qemu-img ${theirs} bytes`);
    expect(ours).toBeLessThan(theirs * 1.1);
  });

  it.each([
    [['-c', '-O', 'qcow2', '-o', 'data_file=x.data', 'src.raw', 'x.qcow2']],
    [['-c', '-O', 'qcow2', '-o', 'preallocation=metadata', 'src.raw', 'x.qcow2']],
    [['-c', '-O', 'raw', 'src.raw', 'x.raw']],
  ])('fails like qemu-img for %j', async (args) => {
    const q = normalized(runTool('qemu-img', ['convert', ...args], tmp.dir));
    const o = normalized(await runOurs(run, args, tmp.dir));
    expect(o).toEqual(q);
  });
});
