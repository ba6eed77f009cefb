/**
 * raw (QEMU block/raw-format.c): the guest sees the bytes of its `file` child, optionally a window
 * of them: `offset` where the image starts, `size` its fixed length. Every request is forwarded
 * with the offset added. Without `size` the length follows the child and the image can grow
 * (truncate resizes the child to offset + length); with `size` it is fixed, and requests that
 * leave the window fail without touching the child: writes with ENOSPC, reads with EINVAL.
 */
import type { BlockDriver, BlockDriverOps } from '../../block/driver.ts';
import { genericError, ioError } from '../../block/errors.ts';
import type { BlockNode } from '../../block/node.ts';
import type { BlockStatus, WriteFlags, ZeroOptions } from '../../block/types.ts';
import { PROBE_BYTES, probeFormat } from '../../config/probe.ts';
import { withDefaults } from '../options.ts';
import { rawCreator } from './raw-create.ts';

/** BDRV_SECTOR_SIZE: a fixed size must be a multiple, so rounding can never leak past it. */
const SECTOR = 512;

const OPTIONS = {
  file: { type: 'child', role: 'file', required: true, help: 'the node holding the image bytes' },
  offset: { type: 'size', default: 0, help: 'offset in the disk where the image starts' },
  size: { type: 'size', help: 'virtual disk size' },
} as const;

export const rawDriver = {
  name: 'raw',
  kind: 'format',
  options: OPTIONS,
  // What the child allows; a fixed `size` refuses to grow (raw_co_truncate).
  capabilities: { writable: true, persistent: true, growable: true, discard: true, writeZeroes: true },
  creator: rawCreator,

  async open(ctx): Promise<BlockDriverOps> {
    const file = ctx.children.get('file');
    if (!file) throw genericError('A block device must be specified for "file"');
    const opts = withDefaults(OPTIONS, ctx.options);
    return new RawImage(file, opts.offset as number, opts.size as number | undefined, ctx.probed === true);
  },
} as const satisfies BlockDriver;

class RawImage implements BlockDriverOps {
  private hasSize: boolean;
  private size: number;
  /** A probed image is written in whole first sectors, so the probe check sees all of it. */
  readonly requestAlignment: number;

  /** Checks offset and size against the child as raw_apply_options does, with its texts. */
  constructor(
    private file: BlockNode,
    private offset: number,
    size: number | undefined,
    /** Opened by probing: writes may not turn it into something that probes as another format. */
    private readonly probed: boolean,
  ) {
    this.requestAlignment = probed ? PROBE_BYTES : 1;
    const real = file.length();
    if (offset > real) {
      throw genericError(`Offset (${offset}) cannot be greater than size of the containing file (${real})`);
    }
    this.hasSize = size !== undefined;
    if (size !== undefined && real - offset < size) {
      // The doubled space is QEMU's.
      throw genericError(
        `The sum of offset (${offset}) and size (${size}) has to be smaller or equal to the ` +
          ` actual size of the containing file (${real})`,
      );
    }
    if (size !== undefined && size % SECTOR !== 0) {
      throw genericError(`Specified size is not multiple of ${SECTOR}`);
    }
    this.size = size ?? real - offset;
  }

  /** raw_getlength: follows the child; a fixed size only ever shrinks with it. */
  length(): number {
    const len = this.file.length();
    if (len < this.offset) this.size = 0;
    else this.size = this.hasSize ? Math.min(this.size, len - this.offset) : len - this.offset;
    return this.size;
  }

  async read(offset: number, dst: Uint8Array): Promise<void> {
    const at = this.adjust(offset, dst.length, false);
    this.file.debugEvent('read_aio');
    await this.file.read(at, dst);
  }

  async write(offset: number, src: Uint8Array, flags: WriteFlags): Promise<void> {
    const at = this.adjust(offset, src.length, true);
    // raw_co_pwritev: a guest of a probed raw image must not make it probe as, say, qcow2 —
    // the next open would follow a backing file the guest chose.
    if (this.probed && offset < PROBE_BYTES && src.length > 0) {
      if (probeFormat(src.subarray(0, PROBE_BYTES)) !== 'raw') throw ioError('EPERM');
    }
    this.file.debugEvent('write_aio');
    await this.file.write(at, src, flags);
  }

  async writeZeroes(offset: number, bytes: number, opts: ZeroOptions): Promise<void> {
    await this.file.writeZeroes(this.adjust(offset, bytes, true), bytes, opts);
  }

  async discard(offset: number, bytes: number): Promise<void> {
    await this.file.discard(this.adjust(offset, bytes, true), bytes);
  }

  async flush(): Promise<void> {
    await this.file.flush();
  }

  /** The child's status at the shifted offset (raw answers BDRV_BLOCK_RAW: "ask my file"). */
  async blockStatus(offset: number, bytes: number): Promise<BlockStatus> {
    const status = await this.file.blockStatus(offset + this.offset, bytes);
    return { ...status, bytes: Math.min(status.bytes, bytes), offset: offset + this.offset };
  }

  async truncate(bytes: number): Promise<void> {
    if (this.hasSize) throw ioError('ENOTSUP', 'Cannot resize fixed-size raw disks');
    await this.file.truncate(bytes + this.offset);
    this.size = bytes;
  }

  /** blockdev-reopen (raw_reopen_prepare): a new window, checked as at open, with its texts. */
  async reopen(options: Readonly<Record<string, unknown>>): Promise<void> {
    const opts = withDefaults(OPTIONS, options);
    const next = new RawImage(this.file, opts.offset as number, opts.size as number | undefined, this.probed);
    this.offset = next.offset;
    this.hasSize = next.hasSize;
    this.size = next.size;
  }

  /** Live graph changes: a new `file` (a filter inserted above the old one, say). */
  replaceChild(name: string, node: BlockNode | null): void {
    if (name !== 'file' || !node) throw genericError(`Cannot change the '${name}' child of a raw node`);
    this.file = node;
  }

  /** raw_adjust_offset: the child offset of a request, refused if it leaves a fixed window. */
  private adjust(offset: number, bytes: number, isWrite: boolean): number {
    if (this.hasSize && (offset > this.size || bytes > this.size - offset)) {
      throw ioError(isWrite ? 'ENOSPC' : 'EINVAL');
    }
    return offset + this.offset;
  }
}
