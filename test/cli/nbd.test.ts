/**
 * `blockgraph nbd` with QEMU's tools as clients: qemu-img info/map/convert over NBD, qemu-io
 * writes (zeroes and discards too), two clients at once, qemu-img check afterwards, and
 * qemu-nbd's exit after the last client and its error texts.
 */
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run, serveImage, type NbdServing } from '../../src/cli/nbd.ts';
import { qemu, qemuAsync, qemuImgMap, mergeMap, type MapEntry } from '../nbd/qemu-nbd.ts';
import { runOurs, runTool } from './helpers.ts';

let dir: string;
let image: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'blockgraph-nbd-cli-'));
  image = join(dir, 'a.qcow2');
  qemu('qemu-img', ['create', '-q', '-f', 'qcow2', image, '4M']);
  qemu('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0xaa 0 64k', '-c', 'write -P 0xbb 2M 192k', image]);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function serve(img: string, sock: string, extra: { readOnly?: boolean; shared?: number } = {}) {
  return serveImage({
    image: { filename: img, format: 'qcow2', readOnly: extra.readOnly },
    address: { type: 'unix', path: sock },
    exportName: 'exp',
    shared: extra.shared ?? 4,
    persistent: true,
  });
}

describe('blockgraph nbd with QEMU clients', () => {
  let serving: NbdServing;
  let uri: string;

  beforeAll(async () => {
    const sock = join(dir, 'ro.sock');
    serving = await serve(image, sock, { readOnly: true });
    uri = `nbd+unix:///exp?socket=${sock}`;
  });
  afterAll(() => serving.close());

  it('answers qemu-img info, map (= map of the image) and convert', async () => {
    const info = JSON.parse((await qemuAsync('qemu-img', ['info', '--output=json', uri])).stdout);
    expect(info['virtual-size']).toBe(4 << 20);
    const map = await qemuAsync('qemu-img', ['map', '--output=json', uri]);
    expect(mergeMap(JSON.parse(map.stdout) as MapEntry[])).toEqual(qemuImgMap(['-f', 'qcow2', '-U', image]));
    const copy = join(dir, 'copy.raw');
    expect((await qemuAsync('qemu-img', ['convert', '-O', 'raw', uri, copy])).status).toBe(0);
    expect(runTool('qemu-img', ['compare', '-U', '-f', 'qcow2', '-F', 'raw', image, copy]).stdout).toBe(
      'Images are identical.\n',
    );
  });

  it('is read-only to qemu-io as a qemu-nbd -r export is', async () => {
    const r = await qemuAsync('qemu-io', ['-f', 'raw', '-c', 'write 0 512', uri]);
    expect(r.stderr).toBe(`qemu-io: can't open device ${uri}: Could not open image: Permission denied\n`);
  });
});

describe('blockgraph nbd writes', () => {
  it('takes qemu-io writes, zeroes and discards from two clients at once; qemu-img check is clean', async () => {
    const img = join(dir, 'w.qcow2');
    copyFileSync(image, img);
    const sock = join(dir, 'w.sock');
    const serving = await serve(img, sock, { shared: 2 });
    const uri = `nbd+unix:///exp?socket=${sock}`;
    const [a, b] = await Promise.all([
      qemuAsync('qemu-io', [
        '-f',
        'raw',
        '-c',
        'write -P 0x11 1M 256k',
        '-c',
        'write -z 2M 64k',
        '-c',
        'flush',
        uri,
      ]),
      qemuAsync('qemu-io', ['-f', 'raw', '-c', 'write -f -P 0x22 3M 64k', '-c', 'discard 0 64k', uri]),
    ]);
    expect([a.stderr, b.stderr]).toEqual(['', '']);
    await serving.close();
    expect(runTool('qemu-img', ['check', img]).status).toBe(0);
    const verify = runTool('qemu-io', [
      '-f',
      'qcow2',
      '-c',
      'read -P 0x11 1M 256k',
      '-c',
      'read -P 0 2M 64k',
      '-c',
      'read -P 0xbb 2112k 128k',
      '-c',
      'read -P 0x22 3M 64k',
      img,
    ]);
    expect(verify.stdout).not.toMatch(/Pattern verification failed/);
    expect(verify.status).toBe(0);
  });
});

describe('blockgraph nbd command line', () => {
  it('exits after its last client without -t', async () => {
    const sock = join(dir, 'once.sock');
    const done = runOurs(run, ['-k', sock, '-f', 'qcow2', '-r', image]);
    for (
      let i = 0;
      i < 100 && (await qemuAsync('qemu-img', ['info', `nbd+unix://?socket=${sock}`])).status !== 0;
      i++
    ) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await done).toEqual({ stdout: '', stderr: '', status: 0 });
  });

  it("reports qemu-nbd's errors", async () => {
    const missing = join(dir, 'nonexist');
    const theirs = runTool('qemu-nbd', ['-k', join(dir, 'x.sock'), missing]);
    const ours = await runOurs(run, ['-k', join(dir, 'x.sock'), missing]);
    expect(ours.stderr).toBe(theirs.stderr.replace(/^qemu-nbd:/, 'blockgraph:'));
    expect(ours.status).toBe(1);
    expect((await runOurs(run, ['-e', 'abc', image])).stderr).toBe(
      "blockgraph: Invalid shared device number 'abc'\n",
    );
    expect((await runOurs(run, ['--image-opts', '-f', 'raw', image])).stderr).toBe(
      'blockgraph: --image-opts and -f are mutually exclusive\n',
    );
  });
});
