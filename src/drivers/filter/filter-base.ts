/**
 * What the filters over one `file` child share (QEMU's bdrv_filter_default_perms drivers): the
 * required child at open, the capabilities of a pass-through node, forwarding of every request
 * they do not change, and the live replacement of `file` (graph.setChild / replaceNode).
 */
import type { BlockDriverOps, OpenContext } from '../../block/driver.ts';
import { genericError, type QmpError } from '../../block/errors.ts';
import type { BlockNode } from '../../block/node.ts';
import type { BlockStatus, WriteFlags, ZeroOptions } from '../../block/types.ts';

/** A filter can do whatever its child can: the graph checks the child's own capabilities. */
export const FILTER_CAPABILITIES = {
  writable: true,
  persistent: true,
  growable: true,
  discard: true,
  writeZeroes: true,
} as const;

/** Child `name` of the node being opened; QEMU's text when the options gave none. */
export function requiredChild(ctx: OpenContext, name: string): BlockNode {
  const child = ctx.children.get(name);
  if (!child) throw genericError(`A block device must be specified for "${name}"`);
  return child;
}

/**
 * The refusal of a live graph change that would give `what` (e.g. "a throttle node") another
 * child than `name`'s replacement, or none.
 */
export function childRefused(name: string, what: string): QmpError {
  return genericError(`Cannot change the '${name}' child of ${what}`);
}

/**
 * A filter over its `file` child: every request passes to `file` unchanged until a subclass
 * overrides it. `file` is read at each use, so replaceChild takes effect at the next request.
 */
export abstract class FileFilter implements BlockDriverOps {
  /** @param what the node as error texts name it, with its article ("a compress node"). */
  constructor(
    protected file: BlockNode,
    private readonly what: string,
  ) {}

  length(): number {
    return this.file.length();
  }

  read(offset: number, dst: Uint8Array): Promise<void> {
    return this.file.read(offset, dst);
  }

  write(offset: number, src: Uint8Array, flags: WriteFlags): Promise<void> {
    return this.file.write(offset, src, flags);
  }

  writeZeroes(offset: number, bytes: number, opts: ZeroOptions): Promise<void> {
    return this.file.writeZeroes(offset, bytes, opts);
  }

  discard(offset: number, bytes: number): Promise<void> {
    return this.file.discard(offset, bytes);
  }

  flush(): Promise<void> {
    return this.file.flush();
  }

  blockStatus(offset: number, bytes: number): Promise<BlockStatus> {
    return this.file.blockStatus(offset, bytes);
  }

  truncate(bytes: number): Promise<void> {
    return this.file.truncate(bytes);
  }

  /** A live graph change: requests go to the new `file` from now on; a filter needs one. */
  replaceChild(name: string, node: BlockNode | null): void {
    if (name !== 'file' || !node) throw childRefused(name, this.what);
    this.checkChild(node);
    this.file = node;
  }

  /** Throws, before anything changed, if `node` cannot become `file`; any node can by default. */
  protected checkChild(_node: BlockNode): void {}
}
