/**
 * I/O limits on a BlockBackend (QEMU's blk_io_limits_enable/disable/update_group and the
 * throttle members of BlockDeviceInfo): what -drive throttling.* and block_set_io_throttle set up.
 * The backend holds its group membership in `throttle`, and intercepts its reads and writes there.
 */
import type { ThrottleGroupMember } from './group.ts';
import type { ThrottleGroups } from './groups.ts';
import { BUCKETS, type BucketName, type ThrottleConfig, throttleEnabled } from './throttle.ts';

/** What this module needs of a BlockBackend. */
export interface ThrottledBackend {
  throttle: ThrottleGroupMember | undefined;
  drained<T>(section: () => Promise<T>): Promise<T>;
}

/**
 * Sets `cfg` (already checked) as the backend's limits, as qmp_block_set_io_throttle does: limits
 * enabled join `group` (on first use, or when a different group is named), no limits leave it.
 */
export async function setIoLimits(
  blk: ThrottledBackend,
  groups: ThrottleGroups,
  cfg: ThrottleConfig,
  group: string,
  groupNamed: boolean,
): Promise<void> {
  if (!throttleEnabled(cfg)) {
    await disableIoLimits(blk, groups);
    return;
  }
  if (blk.throttle && groupNamed && blk.throttle.group.name !== group) await disableIoLimits(blk, groups);
  blk.throttle ??= groups.join(group);
  blk.throttle.configure(cfg);
}

/** blk_io_limits_disable: leaves the group with the backend drained. */
export async function disableIoLimits(blk: ThrottledBackend, groups: ThrottleGroups): Promise<void> {
  const member = blk.throttle;
  if (!member) return;
  await blk.drained(async () => {
    blk.throttle = undefined;
    groups.leave(member);
  });
}

/** QMP's names for the buckets in BlockDeviceInfo. */
const INFO_NAMES: Readonly<Record<BucketName, string>> = {
  'bps-total': 'bps',
  'bps-read': 'bps_rd',
  'bps-write': 'bps_wr',
  'iops-total': 'iops',
  'iops-read': 'iops_rd',
  'iops-write': 'iops_wr',
};

/**
 * `info` (a BlockDeviceInfo in QAPI order) with the backend's limits, as bdrv_block_device_info
 * fills them: the six rates always, a burst rate and its length only when set, iops_size when
 * set, and the group's name; the optional ones go after `image`, in schema order.
 */
export function withThrottleInfo(
  info: Record<string, unknown>,
  member: ThrottleGroupMember | undefined,
): Record<string, unknown> {
  if (!member) return info;
  const cfg = member.group.config();
  const optional: Record<string, unknown> = {};
  for (const b of BUCKETS) if (cfg.buckets[b].max) optional[`${INFO_NAMES[b]}_max`] = cfg.buckets[b].max;
  for (const b of BUCKETS) {
    if (cfg.buckets[b].max) optional[`${INFO_NAMES[b]}_max_length`] = cfg.buckets[b].burstLength;
  }
  if (cfg.opSize) optional.iops_size = cfg.opSize;
  optional.group = member.group.name;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(info)) {
    out[key] = value;
    if (key === 'image') Object.assign(out, optional);
  }
  for (const b of BUCKETS) out[INFO_NAMES[b]] = cfg.buckets[b].avg;
  return out;
}
