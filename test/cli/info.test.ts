/**
 * `blockgraph info` next to qemu-img info 7.2 on the same images: human and JSON output, json:
 * and --image-opts names (QEMU's QDict key order included), and the errors.
 * Note: `disk size` / `actual-size` / `dirty-flag` come from the drivers' imageFacts().
 */
import { copyFileSync, mkdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../src/cli/info.ts';
import { normalized, runOurs, runTool, tempDir } from './helpers.ts';
import { makeChain, makeFeatureImages, makeSnapshots } from './qcow2-images.ts';

const tmp = tempDir();

beforeAll(() => {
  runTool('qemu-img', ['create', '-q', '-f', 'raw', tmp.path('a.raw'), '1M']);
  runTool('qemu-io', ['-f', 'raw', '-c', 'write -P 1 0 64k', tmp.path('a.raw')]);
  runTool('truncate', ['-s', '1179648', tmp.path('odd.raw')]);
  copyFileSync(tmp.path('a.raw'), tmp.path('é x.raw'));
  makeChain(tmp.dir);
  makeSnapshots(tmp.dir);
  makeFeatureImages(tmp.dir);
  mkdirSync(tmp.path('sub'));
  for (const f of ['base.raw', 'mid.qcow2', 'top.qcow2']) copyFileSync(tmp.path(f), tmp.path(`sub/${f}`));
  // -u: the backing file does not exist; qemu-img info still shows the image.
  runTool(
    'qemu-img',
    ['create', '-q', '-u', '-f', 'qcow2', '-b', 'gone.qcow2', '-F', 'qcow2', 'orphan.qcow2', '1M'],
    tmp.dir,
  );
});
afterAll(tmp.cleanup);

async function expectSame(args: string[]): Promise<void> {
  const q = normalized(runTool('qemu-img', ['info', ...args], tmp.dir));
  const b = normalized(await runOurs(run, args, tmp.dir));
  expect(b).toEqual(q);
}

describe('blockgraph info matches qemu-img info', () => {
  it.each([
    [['a.raw']],
    [['--output=json', 'a.raw']],
    [['--output', 'json', '-f', 'raw', 'a.raw']],
    [['-U', 'odd.raw']],
    [['--backing-chain', '--output=json', 'a.raw']],
    [['--output=json', 'é x.raw']],
    [['-f', 'file', 'a.raw']],
    [['json:{"driver":"raw","file":{"driver":"file","filename":"a.raw"}}']],
    [['json:{"driver":"raw","size":512,"offset":0,"file":{"driver":"file","filename":"a.raw"}}']],
    [['--output=json', 'json:{"driver":"null-co","size":1048576}']],
    [['--image-opts', 'driver=raw,offset=4096,size=8192,file.driver=file,file.filename=a.raw']],
    [['--image-opts', 'file.driver=file,file.filename=a.raw']],
    [['--image-opts', 'driver=null-co,size=1M,read-zeroes=on,node-name=x0,read-only=on']],
    [['--object', 'secret,id=s0,data=x', 'a.raw']],
  ])('info %j', async (args) => expectSame(args));

  it.each([
    [['top.qcow2']],
    [['--output=json', 'top.qcow2']],
    [['--backing-chain', 'top.qcow2']],
    [['--backing-chain', '--output=json', 'sub/top.qcow2']],
    [['--backing-chain', '--output=json', `${tmp.dir}/sub/top.qcow2`]],
    [['snap.qcow2']],
    [['--output=json', 'snap.qcow2']],
    [['bitmaps.qcow2']],
    [['--output=json', 'bitmaps.qcow2']],
    [['datafile.qcow2']],
    [['--output=json', 'datafile.qcow2']],
    [['orphan.qcow2']],
    [['--output=json', 'orphan.qcow2']],
    [['--image-opts', 'driver=qcow2,file.driver=file,file.filename=top.qcow2']],
  ])('info on qcow2 %j', async (args) => expectSame(args));

  it.each([
    [['--backing-chain', 'orphan.qcow2']],
    [['-f', 'qcow2', 'a.raw']],
    [['missing.raw']],
    [['/tmp']],
    [['-f', 'bogus', 'a.raw']],
    [['--output=xml', 'a.raw']],
    [[]],
    [['a.raw', 'b.raw']],
    [['-x', 'a.raw']],
    [['--bogus', 'a.raw']],
    [['-f']],
    [['--image-opts', '-f', 'raw', 'x']],
    [['--image-opts', 'driver=raw,file.driver=file,file.filename=a.raw,bogus=1']],
    [['--object', 'secret,data=x', 'a.raw']],
    [['--object', 'bogus,id=s0', 'a.raw']],
    [['--object', 'secret,id=s0', 'a.raw']],
    [['--object', 'secret,id=s0,data=x', '--object', 'secret,id=s0,data=y', 'a.raw']],
    [['--object', 'secret,id=0s,data=x', 'a.raw']],
    [['--object', 'secret,id=s0,data=x,file=/etc/hostname', 'a.raw']],
    [['--object', 'secret,id=s0,data=x,format=hex', 'a.raw']],
  ])('error %j', async (args) => expectSame(args));
});
