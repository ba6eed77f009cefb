/**
 * -drive's I/O limits (blockdev.c): the `throttling.*` options (QEMU's THROTTLE_OPTS) and their
 * legacy aliases `bps=`, `iops_rd=`, ..., `group=`, which drive_new renames before anything else.
 * The limits belong to the drive's BlockBackend, in the group `throttling.group` or, by default,
 * one named after the drive's id (blockdev_init).
 */
import { genericError } from '../block/errors.ts';
import {
  checkConfig,
  limitTarget,
  LIMIT_NAMES,
  newConfig,
  throttleEnabled,
  type ThrottleConfig,
} from '../block/throttle/throttle.ts';
import { parseCInteger } from './validate.ts';

/** drive_new's opt_renames, in its order: legacy name → QMP name. */
export const DRIVE_RENAMES: readonly (readonly [string, string])[] = [
  ['iops', 'throttling.iops-total'],
  ['iops_rd', 'throttling.iops-read'],
  ['iops_wr', 'throttling.iops-write'],
  ['bps', 'throttling.bps-total'],
  ['bps_rd', 'throttling.bps-read'],
  ['bps_wr', 'throttling.bps-write'],
  ['iops_max', 'throttling.iops-total-max'],
  ['iops_rd_max', 'throttling.iops-read-max'],
  ['iops_wr_max', 'throttling.iops-write-max'],
  ['bps_max', 'throttling.bps-total-max'],
  ['bps_rd_max', 'throttling.bps-read-max'],
  ['bps_wr_max', 'throttling.bps-write-max'],
  ['iops_size', 'throttling.iops-size'],
  ['group', 'throttling.group'],
  ['readonly', 'read-only'],
];

/** The -drive options this module consumes. */
export const THROTTLE_KEYS: readonly string[] = [
  ...LIMIT_NAMES.map((name) => `throttling.${name}`),
  'throttling.group',
];

/** qemu_opt_rename for each alias; QEMU refuses an option given under both names. */
export function renameDriveOptions(options: Readonly<Record<string, string>>): Record<string, string> {
  const opts = { ...options };
  for (const [from, to] of DRIVE_RENAMES) {
    if (opts[from] === undefined) continue;
    if (opts[to] !== undefined)
      throw genericError(`'${to}' and its alias '${from}' can't be used at the same time`);
    opts[to] = opts[from]!;
    delete opts[from];
  }
  return opts;
}

export interface DriveThrottle {
  /** The group the drive's BlockBackend joins. */
  readonly group: string;
  readonly config: ThrottleConfig;
}

/**
 * The drive's limits from its (renamed) options, checked as extract_common_blockdev_options
 * does; undefined when no limit is set (throttle_enabled).
 */
export function driveThrottle(opts: Readonly<Record<string, string>>, id: string): DriveThrottle | undefined {
  const cfg = newConfig();
  for (const name of LIMIT_NAMES) {
    const key = `throttling.${name}`;
    const value = opts[key];
    if (value === undefined) continue;
    const n = qemuOptNumber(key, value);
    const target = limitTarget(name);
    if (!target) cfg.opSize = n;
    else cfg.buckets[target.bucket][target.field] = n;
  }
  checkConfig(cfg);
  if (!throttleEnabled(cfg)) return undefined;
  return { group: opts['throttling.group'] ?? id, config: cfg };
}

/** QEMU_OPT_NUMBER (qemu_strtou64: a negative number wraps around to a huge one). */
function qemuOptNumber(key: string, value: string): number {
  const n = parseCInteger(value);
  if (n === undefined) throw genericError(`Parameter '${key}' expects a number`);
  return n < 0 ? 2 ** 64 + n : n;
}
