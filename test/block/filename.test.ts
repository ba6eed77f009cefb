import { writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { mustRunIn, tempDir } from '../cli/helpers.ts';
import { connect } from '../qmp/in-process.ts';

const tmp = tempDir();
afterAll(tmp.cleanup);
const run = mustRunIn(tmp.dir);
run('qemu-img', ['create', '-q', '-f', 'qcow2', 'base.qcow2', '1M']);
run('qemu-img', ['create', '-q', '-f', 'qcow2', 'other.qcow2', '1M']);
for (const top of ['top.qcow2', 'top2.qcow2', 'top3.qcow2']) {
  run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', top]);
}
run('qemu-img', ['create', '-q', '-f', 'qcow2', 'c.qcow2', '1M']);
for (const raw of ['r.img', 't1.img', 't2.img', 't3.img', 't4.img'])
  writeFileSync(tmp.path(raw), new Uint8Array(1 << 20));

const file = (name: string) => ({ driver: 'file', filename: tmp.path(name) });

/**
 * Node stacks and the `file` QEMU 7.2 reports for each node (query-named-block-nodes, flat),
 * captured with the same options over files of the same names; `${D}` is the directory.
 */
const STACKS: [Record<string, unknown>, Record<string, string>][] = [
  [
    { driver: 'throttle', 'node-name': 'thr', 'throttle-group': 'tg0', file: { driver: 'null-co', 'node-name': 'n0' } },
    { thr: 'json:{"throttle-group": "tg0", "driver": "throttle", "file": {"driver": "null-co"}}', n0: 'null-co://' },
  ],
  [
    { driver: 'copy-on-read', 'node-name': 'cor', file: { driver: 'null-co', 'node-name': 'n1' } },
    { cor: 'json:{"driver": "copy-on-read", "file": {"driver": "null-co"}}', n1: 'null-co://' },
  ],
  [{ driver: 'blkdebug', 'node-name': 'dbg', image: { driver: 'null-co' } }, { dbg: 'blkdebug::null-co://' }],
  [
    { driver: 'blkdebug', 'node-name': 'dbga', align: 4096, image: { driver: 'null-co' } },
    { dbga: 'json:{"image": {"driver": "null-co"}, "driver": "blkdebug", "align": 4096}' },
  ],
  [
    { driver: 'raw', 'node-name': 'rawo', offset: 512, size: 4096, file: { ...file('r.img'), 'node-name': 'f1' } },
    {
      rawo: 'json:{"offset": 512, "driver": "raw", "size": 4096, "file": {"driver": "file", "filename": "${D}/r.img"}}',
      f1: '${D}/r.img',
    },
  ],
  [{ driver: 'raw', 'node-name': 'rawp', file: file('r.img') }, { rawp: '${D}/r.img' }],
  [{ driver: 'qcow2', 'node-name': 'q1', file: file('other.qcow2') }, { q1: '${D}/other.qcow2' }],
  [
    { driver: 'qcow2', 'node-name': 'q2', backing: null, file: file('top.qcow2') },
    { q2: 'json:{"backing": null, "driver": "qcow2", "file": {"driver": "file", "filename": "${D}/top.qcow2"}}' },
  ],
  // Backing opened from the image header: not overridden, the plain name stays.
  [{ driver: 'qcow2', 'node-name': 'q4', file: file('top2.qcow2') }, { q4: '${D}/top2.qcow2' }],
  [
    { driver: 'qcow2', 'node-name': 'q5', backing: 'q1', file: file('top3.qcow2') },
    {
      q5:
        'json:{"backing": {"driver": "qcow2", "file": {"driver": "file", "filename": "${D}/other.qcow2"}}, ' +
        '"driver": "qcow2", "file": {"driver": "file", "filename": "${D}/top3.qcow2"}}',
    },
  ],
  [{ driver: 'null-co', 'node-name': 'ns', size: 4096 }, { ns: 'json:{"driver": "null-co", "size": 4096}' }],
  // latency-ns is not a strong option: it does not show.
  [
    { driver: 'null-co', 'node-name': 'nz', 'read-zeroes': true, 'latency-ns': 5 },
    { nz: 'json:{"read-zeroes": true, "driver": "null-co"}' },
  ],
  [{ driver: 'raw', 'node-name': 'rawn', file: 'ns' }, { rawn: 'json:{"driver": "raw", "file": {"driver": "null-co", "size": 4096}}' }],
  [
    { driver: 'throttle', 'node-name': 'thr2', 'throttle-group': 'tg0', file: 'rawo' },
    {
      thr2:
        'json:{"throttle-group": "tg0", "driver": "throttle", "file": {"offset": 512, "driver": "raw", ' +
        '"size": 4096, "file": {"driver": "file", "filename": "${D}/r.img"}}}',
    },
  ],
  // copy-before-write takes its file's name; compress has no rule of its own.
  [{ driver: 'null-co', 'node-name': 'src' }, {}],
  [{ driver: 'null-co', 'node-name': 'tgt' }, {}],
  [{ driver: 'copy-before-write', 'node-name': 'cbw', file: 'src', target: 'tgt' }, { cbw: 'null-co://' }],
  [
    { driver: 'compress', 'node-name': 'cmp', file: { driver: 'qcow2', 'node-name': 'cq', file: file('c.qcow2') } },
    {
      cmp: 'json:{"driver": "compress", "file": {"driver": "qcow2", "file": {"driver": "file", "filename": "${D}/c.qcow2"}}}',
      cq: '${D}/c.qcow2',
    },
  ],
  [{ driver: 'blkverify', 'node-name': 'bv', raw: file('t1.img'), test: file('t2.img') }, { bv: 'blkverify:${D}/t1.img:${D}/t2.img' }],
  // A format over blkdebug (a driver with bdrv_file_open) keeps the plain name; over throttle not.
  [
    { driver: 'raw', 'node-name': 'rdbg', file: { driver: 'blkdebug', 'node-name': 'd3', image: file('t3.img') } },
    { rdbg: 'blkdebug::${D}/t3.img', d3: 'blkdebug::${D}/t3.img' },
  ],
  [
    { driver: 'raw', 'node-name': 'rthr', file: { driver: 'throttle', 'throttle-group': 'tg0', file: file('t4.img') } },
    {
      rthr:
        'json:{"driver": "raw", "file": {"throttle-group": "tg0", "driver": "throttle", "file": {"driver": "file", ' +
        '"filename": "${D}/t4.img"}}}',
    },
  ],
  [
    { driver: 'copy-on-read', 'node-name': 'cor2', file: { driver: 'null-co', size: 4096, 'read-zeroes': true } },
    { cor2: 'json:{"driver": "copy-on-read", "file": {"read-zeroes": true, "driver": "null-co", "size": 4096}}' },
  ],
]; // prettier-ignore

describe('node filenames (bdrv_refresh_filename)', () => {
  it('names each node as QEMU 7.2 does, plain or json:', async () => {
    const execute = await connect();
    const group = { 'qom-type': 'throttle-group', id: 'tg0', limits: { 'bps-total': 1048576 } };
    expect(await execute('object-add', group)).toEqual({ return: {} });
    for (const [options] of STACKS) expect(await execute('blockdev-add', options)).toEqual({ return: {} });
    const answer = (await execute('query-named-block-nodes', { flat: true })) as {
      return: { 'node-name': string; file: string; image: { filename: string } }[];
    };
    const byName = new Map(answer.return.map((n) => [n['node-name'], n]));
    for (const [, expected] of STACKS) {
      for (const [name, qemu] of Object.entries(expected)) {
        const want = qemu.replaceAll('${D}', tmp.dir);
        expect({ name, file: byName.get(name)?.file }).toEqual({ name, file: want });
        expect(byName.get(name)?.image.filename).toBe(want);
      }
    }
  });
});
