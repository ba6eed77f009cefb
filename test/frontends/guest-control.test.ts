import { describe, expect, it } from 'vitest';
import { BlockBackend } from '../../src/block/backend.ts';
import {
  CONTROL_OFFSET,
  COUNTER_OFFSET,
  readBootCounter,
  writeGuestControl,
} from '../../src/frontends/guest-control.ts';
import { BlockGraph } from '../../src/graph/graph.ts';

const MIB = 1 << 20;
/** Partition 2 at an odd place, so a helper that assumed the test guest's layout would miss it. */
const P2_LBA = 12345;

/** A 16 MiB memory disk with an MBR whose entry 2 starts at P2_LBA and spans 4 MiB. */
async function disk(withMbr = true) {
  const graph = new BlockGraph();
  const backend = new BlockBackend(graph, 'd0');
  backend.insert(await graph.open({ driver: 'memory', size: 16 * MIB }));
  if (withMbr) {
    const mbr = new Uint8Array(512);
    const view = new DataView(mbr.buffer);
    view.setUint32(446 + 16 + 8, P2_LBA, true);
    view.setUint32(446 + 16 + 12, (4 * MIB) / 512, true);
    view.setUint16(510, 0xaa55, true);
    await backend.write(0, mbr);
  }
  return backend;
}

async function sectorText(backend: BlockBackend, offset: number): Promise<string> {
  const buf = new Uint8Array(512);
  await backend.read(offset, buf);
  return new TextDecoder().decode(buf);
}

describe('guest control block', () => {
  it('writes the magic and the given keys at 1 MiB into partition 2, NUL-terminated', async () => {
    const backend = await disk();
    await writeGuestControl(backend, {
      mode: 'bench',
      benchDisks: ['/dev/sda', '/dev/vda'],
      benchBytes: 64 * MIB,
    });
    const text = await sectorText(backend, P2_LBA * 512 + CONTROL_OFFSET);
    expect(text).toBe(
      'BLOCKGRAPH-CTL\nmode=bench\nbench.disks=/dev/sda /dev/vda\nbench.bytes=67108864\n'.padEnd(512, '\0'),
    );
    // A second write replaces the first entirely: no stale keys survive after the NUL.
    await writeGuestControl(backend, { mode: 'persist', disk: '/dev/vda' });
    expect(await sectorText(backend, P2_LBA * 512 + CONTROL_OFFSET)).toBe(
      'BLOCKGRAPH-CTL\nmode=persist\ndisk=/dev/vda\n'.padEnd(512, '\0'),
    );
    await writeGuestControl(backend, { mode: 'loop', loopRounds: 0 });
    expect(await sectorText(backend, P2_LBA * 512 + CONTROL_OFFSET)).toBe(
      'BLOCKGRAPH-CTL\nmode=loop\nloop.rounds=0\n'.padEnd(512, '\0'),
    );
  });

  it('reads the boot counter as a little-endian 32-bit number', async () => {
    const backend = await disk();
    expect(await readBootCounter(backend)).toBe(0);
    await backend.write(P2_LBA * 512 + COUNTER_OFFSET, new Uint8Array([0x02, 0x01, 0, 0]));
    expect(await readBootCounter(backend)).toBe(258);
  });

  it('refuses a disk without partition 2 and values that are not one line', async () => {
    await expect(writeGuestControl(await disk(false), { mode: 'check' })).rejects.toThrow(
      'guest control: the disk has no partition 2 large enough for a control block',
    );
    const backend = await disk();
    await expect(writeGuestControl(backend, { disk: '/dev/sda\nmode=shell' })).rejects.toThrow(
      "guest control: invalid disk '/dev/sda\nmode=shell'",
    );
    await expect(writeGuestControl(backend, { benchBytes: 1000 })).rejects.toThrow(
      'bench.bytes must be a positive multiple of 1 MiB, not 1000',
    );
    await expect(writeGuestControl(backend, { loopRounds: -1 })).rejects.toThrow(
      'loop.rounds must be a whole number >= 0, not -1',
    );
  });
});
