/**
 * snapshot-access (QEMU 7.2 block/snapshot-access.c): the read-only, point-in-time view a
 * copy-before-write node keeps of its source — image fleecing's export. Its `file` is the
 * copy-before-write node; reads return the source's content as of the moment that node was
 * opened, while the guest keeps writing through it. Discards release snapshot clusters that
 * were read already (the export tells the filter it may stop keeping them). Writes fail EPERM.
 */
import type { BlockDriver, BlockDriverOps } from '../../block/driver.ts';
import { genericError, ioError } from '../../block/errors.ts';
import type { BlockNode } from '../../block/node.ts';
import { PERM_ALL, type BlockStatus } from '../../block/types.ts';
import { CopyBeforeWrite } from '../filter/copy-before-write.ts';

const OPTIONS = {
  file: { type: 'child', role: 'file', required: true, help: 'the copy-before-write node to read' },
} as const;

export const snapshotAccessDriver = {
  name: 'snapshot-access',
  kind: 'protocol',
  options: OPTIONS,
  capabilities: { writable: false, persistent: false, growable: false, discard: true, writeZeroes: false },

  /** snapshot_access_child_perm: it takes nothing on its child and shares everything. */
  childPerms: () => ({ perm: 0, shared: PERM_ALL }),

  async open(ctx): Promise<BlockDriverOps> {
    const file = ctx.children.get('file');
    if (!file) throw genericError('A block device must be specified for "file"');
    return new SnapshotAccess(file);
  },
} as const satisfies BlockDriver;

class SnapshotAccess implements BlockDriverOps {
  constructor(private readonly file: BlockNode) {}

  length(): number {
    return this.file.length();
  }

  read(offset: number, dst: Uint8Array): Promise<void> {
    return this.cbw().snapshotRead(offset, dst);
  }

  async write(): Promise<void> {
    throw ioError('EPERM', 'snapshot-access is read-only');
  }

  async writeZeroes(): Promise<void> {
    throw ioError('EPERM', 'snapshot-access is read-only');
  }

  discard(offset: number, bytes: number): Promise<void> {
    return this.cbw().snapshotDiscard(offset, bytes);
  }

  blockStatus(offset: number, bytes: number): Promise<BlockStatus> {
    return this.cbw().snapshotBlockStatus(offset, bytes);
  }

  filename(): string {
    return this.file.filename();
  }

  /** The child's driver must keep a snapshot (bdrv_co_preadv_snapshot: ENOTSUP otherwise). */
  private cbw(): CopyBeforeWrite {
    const ops = this.file.ops;
    if (!(ops instanceof CopyBeforeWrite)) {
      throw ioError('ENOTSUP', `Node '${this.file.nodeName}' does not keep a snapshot`);
    }
    return ops;
  }
}
