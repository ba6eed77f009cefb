/**
 * block_resize over an in-process QMP monitor: a qcow2 node grown by it equals the same image
 * grown by `qemu-img resize` (and passes `qemu-img check`); the errors are QEMU 7.2's
 * (captured from qemu-system-x86_64 -qmp stdio).
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from '../cli/helpers.ts';
import { connect } from './in-process.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

const tool = (cmd: string, args: string[]) => spawnSync(cmd, args, { encoding: 'utf8' });
const err = (desc: string) => ({ error: { class: 'GenericError', desc } });

describe('block_resize', () => {
  it('grows a qcow2 node exactly as qemu-img resize grows the image', async () => {
    const ours = tmp.path('ours.qcow2');
    const theirs = tmp.path('theirs.qcow2');
    tool('qemu-img', ['create', '-q', '-f', 'qcow2', ours, '1M']);
    tool('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x6b 960k 64k', ours]);
    copyFileSync(ours, theirs);
    const execute = await connect();
    const file = { driver: 'file', filename: ours };
    expect(await execute('blockdev-add', { driver: 'qcow2', 'node-name': 'q0', file })).toEqual({
      return: {},
    });
    expect(await execute('block_resize', { 'node-name': 'q0', size: 3 << 20 })).toEqual({ return: {} });
    expect(await execute('block_resize', { device: 'nope', 'node-name': 'q0', size: 5 << 20 })).toEqual({
      return: {},
    });
    expect(await execute('blockdev-del', { 'node-name': 'q0' })).toEqual({ return: {} });
    tool('qemu-img', ['resize', '-q', '-f', 'qcow2', theirs, '5M']);
    const info = JSON.parse(tool('qemu-img', ['info', '--output=json', ours]).stdout);
    expect(info['virtual-size']).toBe(5 << 20);
    expect(tool('qemu-img', ['check', ours]).status).toBe(0);
    expect(tool('qemu-img', ['compare', ours, theirs]).stdout).toBe('Images are identical.\n');
  });

  it('refuses as QEMU does', async () => {
    const execute = await connect();
    const path = tmp.path('ro.raw');
    tool('qemu-img', ['create', '-q', '-f', 'raw', path, '1M']);
    await execute('blockdev-add', { driver: 'file', 'node-name': 'f0', filename: path, 'read-only': true });
    expect(await execute('block_resize', { 'node-name': 'zz', size: 1 })).toEqual(
      err("Cannot find device='' nor node-name='zz'"),
    );
    expect(await execute('block_resize', { device: 'zz', size: 1 })).toEqual(
      err("Cannot find device='zz' nor node-name=''"),
    );
    expect(await execute('block_resize', { size: 1 })).toEqual(err("Cannot find device='' nor node-name=''"));
    expect(await execute('block_resize', { 'node-name': 'f0', size: -1 })).toEqual(
      err("Parameter 'size' expects a >0 size"),
    );
    expect(await execute('block_resize', { 'node-name': 'f0' })).toEqual(err("Parameter 'size' is missing"));
    expect(await execute('block_resize', { 'node-name': 'f0', size: 1024 })).toEqual(
      err('Image is read-only'),
    );
  });
});
