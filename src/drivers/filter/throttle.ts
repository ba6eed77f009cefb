/**
 * throttle (QEMU block/throttle.c): a filter over its `file` child that holds requests back to
 * the limits of its throttle group (`throttle-group`, the id of a throttle-group object). Nodes
 * naming one group share its limits, served round-robin (block/throttle/group.ts). Reads are
 * throttled as reads; writes, zero writes, discards and compressed writes as writes of their
 * byte count; flush and block-status pass at once.
 *
 * The group can change by reopen; the child by a live graph change (replaceChild). While the
 * node is drained (drainBegin..drainEnd) its requests are not throttled, as QEMU's
 * throttle_co_drain_begin lets them through so a drain never waits for the limits.
 */
import type { BlockDriver, BlockDriverOps } from '../../block/driver.ts';
import { genericError } from '../../block/errors.ts';
import type { BlockNode } from '../../block/node.ts';
import type { ThrottleGroupMember } from '../../block/throttle/group.ts';
import type { ThrottleGroups } from '../../block/throttle/groups.ts';
import type { Direction } from '../../block/throttle/throttle.ts';
import type { WriteFlags, ZeroOptions } from '../../block/types.ts';
import { FileFilter, FILTER_CAPABILITIES, requiredChild } from './filter-base.ts';

const OPTIONS = {
  'throttle-group': { type: 'str', required: true, help: 'the id of the throttle-group object to use' },
  file: { type: 'child', role: 'file', required: true, help: 'the node requests are passed to' },
} as const;

export const throttleDriver = {
  name: 'throttle',
  kind: 'filter',
  options: OPTIONS,
  capabilities: FILTER_CAPABILITIES,

  async open(ctx): Promise<BlockDriverOps> {
    const file = requiredChild(ctx, 'file');
    const groups = ctx.objects?.throttleGroups;
    return new ThrottleFilter(file, joinGroup(groups, ctx.options['throttle-group'] as string), groups!);
  },
} as const satisfies BlockDriver;

/** throttle_configure_tgm: membership of the existing group `name`. */
function joinGroup(groups: ThrottleGroups | undefined, name: string): ThrottleGroupMember {
  if (!groups?.find(name)) throw genericError(`Throttle group '${name}' does not exist`);
  return groups.join(name);
}

class ThrottleFilter extends FileFilter {
  constructor(
    file: BlockNode,
    private member: ThrottleGroupMember,
    private readonly groups: ThrottleGroups,
  ) {
    super(file, 'a throttle node');
  }

  override async read(offset: number, dst: Uint8Array): Promise<void> {
    await this.intercept(dst.length, 'read');
    await this.file.read(offset, dst);
  }

  override async write(offset: number, src: Uint8Array, flags: WriteFlags): Promise<void> {
    await this.intercept(src.length, 'write');
    await this.file.write(offset, src, flags);
  }

  async writeCompressed(offset: number, src: Uint8Array): Promise<void> {
    await this.intercept(src.length, 'write');
    await this.file.write(offset, src, { compressed: true });
  }

  override async writeZeroes(offset: number, bytes: number, opts: ZeroOptions): Promise<void> {
    await this.intercept(bytes, 'write');
    await this.file.writeZeroes(offset, bytes, opts);
  }

  override async discard(offset: number, bytes: number): Promise<void> {
    await this.intercept(bytes, 'write');
    await this.file.discard(offset, bytes);
  }

  /** The node is closed drained: it leaves its group, which goes away if it was the last user. */
  async close(): Promise<void> {
    this.groups.leave(this.member);
  }

  /** throttle_reopen_prepare/commit: only the group may change. */
  async reopen(options: Readonly<Record<string, unknown>>): Promise<void> {
    const name = options['throttle-group'] as string;
    if (name === this.member.group.name) return;
    const member = joinGroup(this.groups, name);
    this.groups.leave(this.member);
    this.member = member;
  }

  /** bdrv_drained_begin (throttle_co_drain_begin): queued requests run, new ones pass. */
  drainBegin(): void {
    this.member.disableLimits();
  }

  drainEnd(): void {
    this.member.enableLimits();
  }

  private intercept(bytes: number, direction: Direction): Promise<void> {
    return this.member.intercept(bytes, direction);
  }
}
