/**
 * The test guest in v86 (Node) booting FROM our virtio-blk-pci device, with no IDE disk at all:
 * SeaBIOS finds the device on v86's PCI bus and reads the MBR, syslinux, the kernel and the
 * initramfs through its own virtio-blk driver (int 13h); then Linux's virtio_blk gives the guest
 * /dev/vda, whose partition 2 holds the control block and passes the disk checks. One boot.
 * (IDE boot disk + virtio data disk: e2e/boot.spec.ts, in Chromium.)
 */
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlockBackend } from '../../../src/block/backend.ts';
import { BlockGraph } from '../../../src/graph/graph.ts';
import { bootGuest, buildGuest, GUEST_BOOT_TIMEOUT, GUEST_JSON, GUEST_RAW } from '../guest-boot.ts';

let dir: string;
beforeAll(async () => {
  await buildGuest();
  dir = await mkdtemp(join(tmpdir(), 'virtio-boot-'));
}, 300_000);
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('virtio-blk in v86', () => {
  it(
    'boots the guest from /dev/vda alone, which passes the disk checks',
    { timeout: 2 * GUEST_BOOT_TIMEOUT },
    async () => {
      const image = join(dir, 'vda.raw');
      await copyFile(GUEST_RAW, image);
      const graph = new BlockGraph();
      const vda = new BlockBackend(graph, 'vd0');
      vda.insert(await graph.open({ driver: 'raw', file: { driver: 'file', filename: image } }));
      vda.attachDevice('virtio0');
      // No control block: the default mode (check) on the boot disk's partition 2, /dev/vda2.
      const guest = await bootGuest({ virtio: [vda] });
      try {
        await guest.waitForDone(2 * GUEST_BOOT_TIMEOUT);
      } finally {
        await guest.stop();
      }
      await vda.flush();
      expect(guest.lines).toContain('BLOCKGRAPH-CHECK disk OK /dev/vda2');
      for (const check of ['seed-sha256', 'direct-write', 'write-loop']) {
        expect(guest.lines.some((l) => l.startsWith(`BLOCKGRAPH-CHECK ${check} OK`))).toBe(true);
      }
      expect(guest.lines.at(-1)).toMatch(/^BLOCKGRAPH-GUEST-DONE pass=\d+ fail=0$/);
      // The guest's pattern went through virtio-blk into the image.
      const { pattern } = JSON.parse(await readFile(GUEST_JSON, 'utf8')) as {
        pattern: { offset: number; line: string };
      };
      const data = new Uint8Array(pattern.line.length);
      await vda.read(pattern.offset, data);
      expect(new TextDecoder().decode(data)).toBe(pattern.line);
      await vda.close();
    },
  );
});
