/**
 * block_set_io_throttle (qapi/block-core.json BlockIOThrottle, blockdev.c
 * qmp_block_set_io_throttle): replaces a drive's I/O limits. Limits enabled make the drive's
 * BlockBackend join `group` (default: the drive's name or device id) or its current group; all
 * zero leaves it. The drive is named by exactly one of `device` and `id`.
 */
import { genericError } from '../../block/errors.ts';
import { setIoLimits } from '../../block/throttle/backend-throttle.ts';
import { checkConfig, newConfig, type BucketName } from '../../block/throttle/throttle.ts';
import type { ArgSpec, ArgsSchema } from '../args.ts';
import { lookupDrive } from './media.ts';
import type { QmpCommand } from './types.ts';
import { NOTHING } from './types.ts';

/** BlockIOThrottle's name for each bucket. */
const NAMES: readonly (readonly [string, BucketName])[] = [
  ['bps', 'bps-total'],
  ['bps_rd', 'bps-read'],
  ['bps_wr', 'bps-write'],
  ['iops', 'iops-total'],
  ['iops_rd', 'iops-read'],
  ['iops_wr', 'iops-write'],
];

const int = (help: string, optional = false): ArgSpec => ({ type: 'int', optional, help });

const ARGS: ArgsSchema = {
  device: { type: 'str', optional: true, help: 'the drive (BlockBackend) name' },
  id: { type: 'str', optional: true, help: 'the device id' },
  ...Object.fromEntries(NAMES.map(([name, bucket]) => [name, int(`${bucket} limit per second`)])),
  ...Object.fromEntries(NAMES.map(([name, bucket]) => [`${name}_max`, int(`${bucket} burst rate`, true)])),
  ...Object.fromEntries(
    NAMES.map(([name, bucket]) => [`${name}_max_length`, int(`${bucket} burst seconds`, true)]),
  ),
  iops_size: int('bytes one operation counts for', true),
  group: { type: 'str', optional: true, help: 'the throttle group to join' },
};

export const blockSetIoThrottle: QmpCommand = {
  name: 'block_set_io_throttle',
  help: "set a drive's I/O limits (all zero: none)",
  args: ARGS,
  async run(ctx, args) {
    const device = args.device as string | undefined;
    const id = args.id as string | undefined;
    const blk = lookupDrive(ctx.graph, device, id);
    if (!blk.root) throw genericError('Device has no medium');
    const cfg = newConfig();
    // QAPI's int64s land in C's uint64_t fields: a negative one is huge and fails the check.
    const value = (key: string) => {
      const n = args[key] as number;
      return n < 0 ? 2 ** 64 + n : n;
    };
    for (const [name, bucket] of NAMES) {
      const b = cfg.buckets[bucket];
      b.avg = value(name);
      if (args[`${name}_max`] !== undefined) b.max = value(`${name}_max`);
      if (args[`${name}_max_length`] !== undefined) b.burstLength = value(`${name}_max_length`);
    }
    if (args.iops_size !== undefined) cfg.opSize = value('iops_size');
    checkConfig(cfg);
    const group = args.group as string | undefined;
    await setIoLimits(
      blk,
      ctx.graph.objects.throttleGroups,
      cfg,
      group ?? device ?? id!,
      group !== undefined,
    );
    return NOTHING;
  },
};
