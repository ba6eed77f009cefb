import { describe, expect, it } from 'vitest';
import { qcow2Driver } from '../../src/drivers/format/qcow2.ts';
import { BlockGraph } from '../../src/graph/graph.ts';
import { checkNodeName } from '../../src/graph/node-name.ts';
import { Perm, PERM_ALL } from '../../src/block/types.ts';
import type { NodeParent } from '../../src/block/node.ts';

const mem = (extra: Record<string, unknown> = {}) => ({ driver: 'memory', size: 1 << 20, ...extra });

/** A non-node user of a node, standing in for a frontend in permission tests. */
const device = (name: string): NodeParent => ({ parentName: name, describe: () => `block device '${name}'` });

describe('node-names', () => {
  it('accepts QEMU-well-formed names and refuses the rest with QEMU texts', () => {
    for (const ok of ['a', 'disk0', 'A.b-c_d', 'x'.repeat(31)]) expect(() => checkNodeName(ok)).not.toThrow();
    expect(() => checkNodeName('1bad')).toThrow("Invalid node-name: '1bad'");
    expect(() => checkNodeName('-x')).toThrow("Invalid node-name: '-x'");
    expect(() => checkNodeName('a b')).toThrow("Invalid node-name: 'a b'");
    expect(() => checkNodeName('x'.repeat(32))).toThrow('Node name too long');
  });

  it('auto-names unnamed nodes #blockNNN and never reuses a taken name', async () => {
    const g = new BlockGraph();
    const top = await g.blockdevAdd({ driver: 'raw', 'node-name': 'top', file: mem() });
    const child = top.child('file')!;
    expect(child.nodeName).toMatch(/^#block\d{3,}$/);
    const other = await g.open(mem());
    expect(other.nodeName).toMatch(/^#block\d{3,}$/);
    expect(other.nodeName).not.toBe(child.nodeName);
  });

  it('refuses duplicates, naming the node', async () => {
    const g = new BlockGraph();
    await g.blockdevAdd(mem({ 'node-name': 'n0' }));
    await expect(g.blockdevAdd(mem({ 'node-name': 'n0' }))).rejects.toThrow(
      "Duplicate nodes with node-name='n0'",
    );
    // A failed add leaves nothing behind: an inline child opened before the failure is closed.
    const before = [...g.nodes.keys()];
    await expect(
      g.blockdevAdd({ driver: 'raw', 'node-name': 'n0', file: mem({ 'node-name': 'inner' }) }),
    ).rejects.toThrow('Duplicate');
    expect([...g.nodes.keys()]).toEqual(before);
  });
});

describe('node lifecycle', () => {
  it('references an existing node by name and keeps it alive until blockdev-del', async () => {
    const g = new BlockGraph();
    const base = await g.blockdevAdd(mem({ 'node-name': 'base' }));
    const top = await g.blockdevAdd({ driver: 'raw', 'node-name': 'top', file: 'base' });
    expect(top.child('file')).toBe(base);
    await expect(g.blockdevDel('base')).rejects.toThrow('Block device base is in use');
    await g.blockdevDel('top');
    expect(g.nodes.has('top')).toBe(false);
    expect(g.nodes.has('base')).toBe(true);
    await g.blockdevDel('base');
    expect(g.nodes.size).toBe(0);
  });

  it('closes inline children with their parent and refuses to delete them alone', async () => {
    const g = new BlockGraph();
    const top = await g.blockdevAdd({ driver: 'raw', 'node-name': 'top', file: mem({ 'node-name': 'f' }) });
    expect(top.child('file')!.nodeName).toBe('f');
    await expect(g.blockdevDel('f')).rejects.toThrow('Node f is not owned by the monitor');
    await g.blockdevDel('top');
    expect(g.nodes.size).toBe(0);
  });

  it('gives a -blockdev (keyval) inline child the inherited options as keyval strings', async () => {
    const g = new BlockGraph();
    const top = await g.blockdevAdd(
      {
        driver: 'raw',
        'node-name': 'top',
        'read-only': 'on',
        cache: { 'no-flush': 'on' },
        file: { driver: 'memory', size: '1048576' },
      },
      'cli',
    );
    // Inherited typed values (read-only: true) would be refused as "Parameters 'file.read-only.*'".
    expect(top.child('file')!.readOnly).toBe(true);
    expect(top.child('file')!.options.cache).toEqual({ direct: false, 'no-flush': true });
  });

  it('reports unknown nodes and drivers with QEMU texts', async () => {
    const g = new BlockGraph();
    await expect(g.blockdevDel('zz')).rejects.toThrow("Failed to find node with node-name='zz'");
    await expect(g.blockdevAdd({ driver: 'raw', 'node-name': 'r', file: 'nonexist' })).rejects.toThrow(
      "Cannot find device='nonexist' nor node-name='nonexist'",
    );
    await expect(g.blockdevAdd({ driver: 'nosuch', 'node-name': 'x' })).rejects.toThrow(
      "Parameter 'driver' does not accept value 'nosuch'",
    );
    // QAPI names the whole path of a missing member, but only the member in a bad value.
    await expect(
      g.blockdevAdd({ driver: 'raw', 'node-name': 'x', file: { driver: 'bogus' } }),
    ).rejects.toThrow("Parameter 'driver' does not accept value 'bogus'");
    await expect(g.blockdevAdd({ driver: 'raw', 'node-name': 'x', file: { filename: 'f' } })).rejects.toThrow(
      "Parameter 'file.driver' is missing",
    );
    await expect(g.open({ driver: 'bogus' }, 'legacy')).rejects.toThrow("Unknown driver 'bogus'");
    expect(g.nodes.size).toBe(0);
  });

  it('refuses to delete a node a backend uses, naming it', async () => {
    const g = new BlockGraph();
    const n = await g.blockdevAdd(mem({ 'node-name': 'd' }));
    const edge = g.attach(device('ide0'), n, 'root', Perm.CONSISTENT_READ, PERM_ALL);
    await expect(g.blockdevDel('d')).rejects.toThrow('Node d is in use');
    await g.detach(edge);
    expect(g.nodes.has('d')).toBe(true);
    await g.blockdevDel('d');
  });
});

describe('permissions', () => {
  it('inline children inherit read-only from their parent', async () => {
    const g = new BlockGraph();
    const top = await g.blockdevAdd({ driver: 'raw', 'node-name': 't', 'read-only': true, file: mem() });
    expect(top.readOnly).toBe(true);
    expect(top.child('file')!.readOnly).toBe(true);
  });

  it('refuses a writer on a read-only node', async () => {
    const g = new BlockGraph();
    const n = await g.blockdevAdd(mem({ 'node-name': 'ro', 'read-only': true }));
    expect(() => g.attach(device('d0'), n, 'root', Perm.WRITE, PERM_ALL)).toThrow('Block node is read-only');
    expect(n.parents).toHaveLength(0);
  });

  it('refuses a conflicting second user, naming both, and leaves the first intact', async () => {
    const g = new BlockGraph();
    const n = await g.blockdevAdd(mem({ 'node-name': 'disk' }));
    const first = g.attach(device('a'), n, 'root', Perm.CONSISTENT_READ | Perm.WRITE, Perm.CONSISTENT_READ);
    expect(() => g.attach(device('b'), n, 'root', Perm.CONSISTENT_READ | Perm.WRITE, PERM_ALL)).toThrow(
      "Permission conflict on node 'disk': permissions 'write' are both required by block device 'b' " +
        "(uses node 'disk' as 'root' child) and unshared by block device 'a' (uses node 'disk' as 'root' child).",
    );
    expect(n.parents.map((p) => p.edge)).toEqual([first]);
    // A reader that shares everything is compatible.
    g.attach(device('c'), n, 'root', Perm.CONSISTENT_READ, PERM_ALL);
    expect(n.parents).toHaveLength(2);
  });

  it('propagates a writer through a filter-like raw node to the protocol node', async () => {
    const g = new BlockGraph();
    const top = await g.blockdevAdd({ driver: 'raw', 'node-name': 'top', file: mem({ 'node-name': 'p' }) });
    const p = g.lookup('p');
    const fileEdge = top.childList[0]!;
    expect(fileEdge.perm & Perm.WRITE).toBe(0);
    const dev = g.attach(device('d0'), top, 'root', Perm.CONSISTENT_READ | Perm.WRITE, Perm.CONSISTENT_READ);
    expect(fileEdge.perm & Perm.WRITE).toBe(Perm.WRITE);
    // Another writer directly on the protocol node now conflicts with the device below raw.
    expect(() => g.attach(device('d1'), p, 'root', Perm.WRITE, PERM_ALL)).toThrow(
      /Permission conflict on node 'p'/,
    );
    await g.detach(dev);
    expect(fileEdge.perm & Perm.WRITE).toBe(0);
  });
});

describe('release', () => {
  it('closes the children of a node whose close fails, then reports the failure', async () => {
    const g = new BlockGraph();
    const top = await g.open({ driver: 'raw', file: mem() });
    const child = top.child('file')!;
    const closed: string[] = [];
    const childClose = child.close.bind(child);
    // As a format whose last flush hits ENOSPC while closing.
    top.close = async () => {
      closed.push('top');
      throw new Error('flush failed on close');
    };
    child.close = async () => {
      closed.push('child');
      await childClose();
    };
    await expect(g.release(top)).rejects.toThrow('flush failed on close');
    expect(closed).toEqual(['top', 'child']);
    expect([...g.nodes.keys()]).toEqual([]);
  });
});

describe('inline backing children', () => {
  it('open read-only unless they say otherwise (bdrv_inherited_options for BDRV_CHILD_COW)', async () => {
    const g = new BlockGraph();
    const store = `backing-default-${Math.random()}`;
    const file = await g.open({ driver: 'memory', store, size: 0 });
    await qcow2Driver.creator.create(file, { size: 1 << 20 }, { children: new Map() });
    await g.release(file);
    const top = await g.blockdevAdd({
      driver: 'qcow2',
      'node-name': 'top',
      file: { driver: 'memory', store },
      backing: { driver: 'raw', 'node-name': 'base', file: mem({ 'node-name': 'basefile' }) },
    });
    expect(top.readOnly).toBe(false);
    expect(g.lookup('base').readOnly).toBe(true);
    expect(g.lookup('basefile').readOnly).toBe(true);
    // An explicit option still wins.
    const g2 = new BlockGraph();
    await expect(
      g2.blockdevAdd({
        driver: 'qcow2',
        'node-name': 'top',
        file: { driver: 'memory', store },
        backing: { driver: 'raw', 'node-name': 'base', 'read-only': false, file: mem() },
      }),
    ).resolves.toBeDefined();
    expect(g2.lookup('base').readOnly).toBe(false);
  });
});
