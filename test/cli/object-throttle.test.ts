/**
 * `--object throttle-group,...` reaches the graphs qemu-img's commands build: an image opened
 * through a throttle node naming the group works as in qemu-img, and fails with qemu-img's text
 * without the object.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run as check } from '../../src/cli/check.ts';
import { run as compare } from '../../src/cli/compare.ts';
import { run as convert } from '../../src/cli/convert.ts';
import type { CommandRun } from '../../src/cli/program.ts';
import { normalized, runOurs, runTool, tempDir } from './helpers.ts';

const tmp = tempDir();
const SRC = tmp.path('src.raw');
const OBJECT = ['--object', 'throttle-group,id=tg0,limits.bps-total=100000000'];
const THROTTLED = `driver=throttle,throttle-group=tg0,file.driver=raw,file.file.driver=file,file.file.filename=${SRC}`;

beforeAll(() => {
  const data = new Uint8Array(1 << 20);
  data.fill(0x5a, 0, 65536);
  writeFileSync(SRC, data);
});
afterAll(() => tmp.cleanup());

/** Ours and qemu-img's outcome of `command args`, normalized. */
async function both(ours: CommandRun, command: string, args: string[]) {
  return {
    ours: normalized(await runOurs(ours, args)),
    qemu: normalized(runTool('qemu-img', [command, ...args])),
  };
}

describe('--object throttle-group in qemu-img commands', () => {
  it('convert copies through the throttle node, and needs the group', async () => {
    const args = (out: string) => [...OBJECT, '--image-opts', THROTTLED, '-O', 'raw', out];
    const { ours, qemu } = await both(convert, 'convert', args(tmp.path('ours.raw')));
    expect(ours).toEqual(qemu);
    expect(ours.status).toBe(0);
    expect(readFileSync(tmp.path('ours.raw')).equals(readFileSync(SRC))).toBe(true);
    const noGroup = await both(convert, 'convert', [
      '--image-opts',
      THROTTLED,
      '-O',
      'raw',
      tmp.path('x.raw'),
    ]);
    expect(noGroup.ours).toEqual(noGroup.qemu);
    expect(noGroup.ours.stderr).toContain("Throttle group 'tg0' does not exist");
  });

  it('compare reads through the throttle node', async () => {
    const args = [...OBJECT, '--image-opts', THROTTLED, `driver=file,filename=${SRC}`];
    const { ours, qemu } = await both(compare, 'compare', args);
    expect(ours).toEqual(qemu);
    expect(ours.stdout).toBe('Images are identical.\n');
  });

  it('check opens the throttle node and refuses it as qemu-img does', async () => {
    const { ours, qemu } = await both(check, 'check', [...OBJECT, '--image-opts', THROTTLED]);
    expect(ours).toEqual(qemu);
    expect(ours.stderr).toBe('blockgraph: This image format does not support checks\n');
  });
});
