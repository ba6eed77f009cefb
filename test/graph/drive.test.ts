import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { driveToConfig, parseDrive } from '../../src/config/drive.ts';
import { openDrive } from '../../src/graph/drive.ts';
import { BlockGraph } from '../../src/graph/graph.ts';

const dir = mkdtempSync(join(tmpdir(), 'blockgraph-drive-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const MiB = 1 << 20;

/** A raw image of 1 MiB whose byte i is i mod 251. */
function rawImage(name: string): string {
  const path = join(dir, name);
  writeFileSync(
    path,
    Uint8Array.from({ length: MiB }, (_, i) => i % 251),
  );
  return path;
}

function drive(text: string) {
  return driveToConfig(parseDrive(text));
}

describe('-drive snapshot=on (bdrv_append_temp_snapshot)', () => {
  it('writes go to a qcow2 overlay in memory; the image file is never written', async () => {
    const path = rawImage('a.img');
    const before = new Uint8Array(readFileSync(path));
    const graph = new BlockGraph();
    const backend = await openDrive(graph, drive(`file=${path},format=raw,if=none,id=d0,snapshot=on`));
    const overlay = backend.root!;
    expect(overlay.driver.name).toBe('qcow2');
    expect(overlay.readOnly).toBe(false);
    expect(overlay.primaryChild()!.driver.name).toBe('memory');
    const image = overlay.childList.find((c) => c.role === 'backing')!.node;
    expect(image.driver.name).toBe('raw');
    // QEMU opens the image with backing-file options: read-only, down to the file.
    expect([image.readOnly, image.primaryChild()!.readOnly]).toEqual([true, true]);
    expect(overlay.length()).toBe(MiB);

    const data = new Uint8Array(70_000).fill(0xcc);
    await backend.write(5000, data);
    await backend.flush();
    const back = new Uint8Array(80_000);
    await backend.read(0, back);
    expect(back.subarray(0, 5000)).toEqual(before.subarray(0, 5000));
    expect(back.subarray(5000, 75_000).every((b) => b === 0xcc)).toBe(true);
    expect(back.subarray(75_000)).toEqual(before.subarray(75_000, 80_000));

    await backend.close();
    expect(graph.nodes.size).toBe(0);
    expect(Buffer.compare(readFileSync(path), before)).toBe(0);
  });

  it("probes the format under the overlay, and the overlay keeps the image's size", async () => {
    const path = join(dir, 'b.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', path, '3M']);
    execFileSync('qemu-io', ['-c', 'write -q -P 0x11 0 64k', path]);
    const before = readFileSync(path);
    const graph = new BlockGraph();
    const backend = await openDrive(graph, drive(`file=${path},if=none,id=d0,snapshot=on`));
    const image = backend.root!.childList.find((c) => c.role === 'backing')!.node;
    expect(image.driver.name).toBe('qcow2');
    expect(backend.length()).toBe(3 * MiB);
    await backend.write(0, new Uint8Array(512).fill(0x22));
    const got = new Uint8Array(1024);
    await backend.read(0, got);
    expect([got[0], got[511], got[512], got[1023]]).toEqual([0x22, 0x22, 0x11, 0x11]);
    await backend.close();
    expect(readFileSync(path).equals(before)).toBe(true);
  });

  it('with readonly=on the overlay is read-only too', async () => {
    const path = rawImage('c.img');
    const graph = new BlockGraph();
    const backend = await openDrive(
      graph,
      drive(`file=${path},format=raw,if=none,id=d0,snapshot=on,readonly=on`),
    );
    expect(backend.root!.readOnly).toBe(true);
    await expect(backend.write(0, new Uint8Array(512))).rejects.toMatchObject({ errno: 'EPERM' });
    await backend.close();
  });

  it('without snapshot=on the image itself is the root and takes the writes', async () => {
    const path = rawImage('d.img');
    const graph = new BlockGraph();
    const backend = await openDrive(graph, drive(`file=${path},format=raw,if=none,id=d0`));
    expect(backend.root!.driver.name).toBe('raw');
    await backend.write(0, new Uint8Array([7, 7, 7]));
    await backend.close();
    expect([...readFileSync(path).subarray(0, 4)]).toEqual([7, 7, 7, 3]);
  });

  it('leaves nothing open when the image cannot be opened', async () => {
    const graph = new BlockGraph();
    await expect(
      openDrive(graph, drive(`file=${join(dir, 'missing.img')},format=raw,if=none,snapshot=on`)),
    ).rejects.toThrow(/No such file or directory/);
    expect(graph.nodes.size).toBe(0);
    expect(graph.backends.size).toBe(0);
  });
});
