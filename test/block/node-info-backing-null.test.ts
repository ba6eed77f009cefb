import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { imageInfo } from '../../src/block/node-info.ts';
import { BlockGraph } from '../../src/graph/graph.ts';

const dir = mkdtempSync(join(tmpdir(), 'blockgraph-node-info-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('imageInfo of an overlay opened with backing: null', () => {
  it("still names the backing file the image records, as QEMU 7.2's query-named-block-nodes does", async () => {
    execFileSync('qemu-img', ['create', '-f', 'qcow2', 'base.qcow2', '1M'], { cwd: dir });
    execFileSync('qemu-img', ['create', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', 'top.qcow2'], {
      cwd: dir,
    });
    const g = new BlockGraph();
    const top = await g.blockdevAdd({
      driver: 'qcow2',
      'node-name': 't',
      'read-only': true,
      backing: null,
      file: { driver: 'file', filename: join(dir, 'top.qcow2') },
    });
    try {
      // qemu-system-x86_64 -qmp stdio, same blockdev-add: these two fields, and no backing-image.
      const info = imageInfo(top);
      expect(info).toMatchObject({ 'backing-filename': 'base.qcow2', 'backing-filename-format': 'qcow2' });
      expect(info).not.toHaveProperty('backing-image');
    } finally {
      await g.blockdevDel('t');
    }
  });
});
