/**
 * The leaky-bucket accounting of QEMU's util/throttle.c: six buckets (bytes and operations; total,
 * read, write), each with an average rate `avg`, a burst rate `max` allowed for `burstLength`
 * seconds, and the `level` of units accounted and not yet leaked. A request may start when every
 * bucket of its direction is below its size (throttle_compute_wait); it is accounted *after* it
 * was let through (throttle_account), so one big request passes at once and the next ones wait
 * until the bucket has leaked below its size again.
 *
 * Time is in nanoseconds from a Clock, so tests drive it by hand and get exact waits.
 */
import { genericError } from '../errors.ts';

/** BucketType, in QEMU's order. */
export const BUCKETS = [
  'bps-total',
  'bps-read',
  'bps-write',
  'iops-total',
  'iops-read',
  'iops-write',
] as const;
export type BucketName = (typeof BUCKETS)[number];

export type Direction = 'read' | 'write';

/** THROTTLE_VALUE_MAX: the largest rate accepted, in units per second. */
export const THROTTLE_VALUE_MAX = 1_000_000_000_000_000;
const UINT_MAX = 4_294_967_295;
const NS_PER_SECOND = 1e9;

export interface LeakyBucket {
  /** Average rate, units per second; 0 = no limit. */
  avg: number;
  /** Burst rate, units per second; 0 = bursts of avg/10 only. */
  max: number;
  /** Units accounted and not yet leaked. */
  level: number;
  /** Units accounted at the burst rate (only used when burstLength > 1). */
  burstLevel: number;
  /** Seconds a burst at `max` may last. */
  burstLength: number;
}

export interface ThrottleConfig {
  readonly buckets: Record<BucketName, LeakyBucket>;
  /** iops-size: a request counts as size/opSize operations when larger (0: always one). */
  opSize: number;
}

/** QAPI ThrottleLimits: every member optional; absent members keep their current value. */
export type ThrottleLimits = Partial<Record<LimitName, number>>;

/** The members of ThrottleLimits, in QAPI's order. */
export const LIMIT_NAMES = [
  'iops-total', 'iops-total-max', 'iops-total-max-length',
  'iops-read', 'iops-read-max', 'iops-read-max-length',
  'iops-write', 'iops-write-max', 'iops-write-max-length',
  'bps-total', 'bps-total-max', 'bps-total-max-length',
  'bps-read', 'bps-read-max', 'bps-read-max-length',
  'bps-write', 'bps-write-max', 'bps-write-max-length',
  'iops-size',
] as const; // prettier-ignore
export type LimitName = (typeof LIMIT_NAMES)[number];

/** Which bucket and field a ThrottleLimits member sets (`iops-size` has none). */
export function limitTarget(
  name: LimitName,
): { bucket: BucketName; field: 'avg' | 'max' | 'burstLength' } | undefined {
  const m = /^((?:bps|iops)-(?:total|read|write))(-max)?(-length)?$/.exec(name);
  if (!m) return undefined;
  const field = m[3] ? 'burstLength' : m[2] ? 'max' : 'avg';
  return { bucket: m[1] as BucketName, field };
}

/** throttle_config_init: no limits, burst length 1. */
export function newConfig(): ThrottleConfig {
  const bucket = (): LeakyBucket => ({ avg: 0, max: 0, level: 0, burstLevel: 0, burstLength: 1 });
  const buckets = Object.fromEntries(BUCKETS.map((b) => [b, bucket()])) as Record<BucketName, LeakyBucket>;
  return { buckets, opSize: 0 };
}

export function copyConfig(cfg: ThrottleConfig): ThrottleConfig {
  const buckets = Object.fromEntries(BUCKETS.map((b) => [b, { ...cfg.buckets[b] }]));
  return { buckets: buckets as Record<BucketName, LeakyBucket>, opSize: cfg.opSize };
}

/** throttle_enabled: some bucket has an average rate. */
export function throttleEnabled(cfg: ThrottleConfig): boolean {
  return BUCKETS.some((b) => cfg.buckets[b].avg > 0);
}

/**
 * throttle_limits_to_config: sets what `limits` has on `cfg` (values are QAPI int64s; C stores
 * them in unsigned fields, so a negative one becomes huge and fails the range check), then checks
 * the result. Throws QEMU's GenericError; `cfg` may be partly changed then.
 */
export function applyLimits(limits: ThrottleLimits, cfg: ThrottleConfig): void {
  for (const name of APPLY_ORDER) {
    const value = limits[name];
    if (value === undefined) continue;
    const target = limitTarget(name);
    if (!target) cfg.opSize = unsigned(value);
    else if (target.field !== 'burstLength') cfg.buckets[target.bucket][target.field] = unsigned(value);
    else {
      if (unsigned(value) > UINT_MAX) {
        throw genericError(`${name} value must be in the range [0, ${UINT_MAX}]`);
      }
      cfg.buckets[target.bucket].burstLength = value;
    }
  }
  checkConfig(cfg);
}

/**
 * throttle_limits_to_config's order: rates, burst rates, burst lengths (bps before iops, so the
 * first out-of-range length it names is QEMU's), then iops-size.
 */
const APPLY_ORDER: readonly LimitName[] = (['', '-max', '-max-length'] as const)
  .flatMap((suffix) => BUCKETS.map((b) => `${b}${suffix}` as LimitName))
  .concat('iops-size');

/** A QAPI int64 as C's uint64_t holds it (only its order matters to the checks). */
function unsigned(value: number): number {
  return value < 0 ? 2 ** 64 + value : value;
}

/** throttle_is_valid, with its texts and in its order. */
export function checkConfig(cfg: ThrottleConfig): void {
  const b = cfg.buckets;
  const conflict = (field: 'avg' | 'max', kind: 'bps' | 'iops') =>
    b[`${kind}-total`][field] > 0 && (b[`${kind}-read`][field] > 0 || b[`${kind}-write`][field] > 0);
  if (
    conflict('avg', 'bps') ||
    conflict('avg', 'iops') ||
    conflict('max', 'bps') ||
    conflict('max', 'iops')
  ) {
    throw genericError('bps/iops/max total values and read/write values cannot be used at the same time');
  }
  if (cfg.opSize && !b['iops-total'].avg && !b['iops-read'].avg && !b['iops-write'].avg) {
    throw genericError('iops size requires an iops value to be set');
  }
  for (const name of BUCKETS) {
    const { avg, max, burstLength } = b[name];
    if (avg > THROTTLE_VALUE_MAX || max > THROTTLE_VALUE_MAX) {
      throw genericError(`bps/iops/max values must be within [0, ${THROTTLE_VALUE_MAX}]`);
    }
    if (!burstLength) throw genericError('the burst length cannot be 0');
    if (burstLength > 1 && !max) throw genericError('burst length set without burst rate');
    if (max && burstLength > Math.floor(THROTTLE_VALUE_MAX / max)) {
      throw genericError('burst length too high for this burst rate');
    }
    if (max && !avg) throw genericError('bps_max/iops_max require corresponding bps/iops values');
    if (max && max < avg) throw genericError('bps_max/iops_max cannot be lower than bps/iops');
  }
}

/** throttle_config_to_limits: every member, as qom-get shows them. */
export function configToLimits(cfg: ThrottleConfig): Required<ThrottleLimits> {
  const out = {} as Record<LimitName, number>;
  for (const name of LIMIT_NAMES) {
    const target = limitTarget(name);
    out[name] = target ? cfg.buckets[target.bucket][target.field] : cfg.opSize;
  }
  return out;
}

/** The buckets a request of each direction is checked against (throttle_compute_wait_for). */
const CHECKED: Record<Direction, readonly BucketName[]> = {
  read: ['bps-total', 'iops-total', 'bps-read', 'iops-read'],
  write: ['bps-total', 'iops-total', 'bps-write', 'iops-write'],
};

/** A ThrottleState: one configuration and the time of its last leak. */
export class ThrottleState {
  private cfg: ThrottleConfig = newConfig();
  private previousLeak = 0;

  /** throttle_config: takes `cfg` with empty buckets, leaking from `now` on. */
  configure(cfg: ThrottleConfig, now: number): void {
    this.cfg = copyConfig(cfg);
    for (const b of BUCKETS) {
      this.cfg.buckets[b].level = 0;
      this.cfg.buckets[b].burstLevel = 0;
    }
    this.previousLeak = now;
  }

  /** throttle_get_config: a copy, safe to edit and pass back to configure. */
  config(): ThrottleConfig {
    return copyConfig(this.cfg);
  }

  /**
   * throttle_compute_timer: leaks the buckets up to `now` and returns how many nanoseconds a
   * request of `direction` must wait before it may start (0: at once).
   */
  computeWait(direction: Direction, now: number): number {
    this.leak(now);
    let wait = 0;
    for (const b of CHECKED[direction]) wait = Math.max(wait, bucketWait(this.cfg.buckets[b]));
    return wait;
  }

  /** throttle_account: a request of `bytes` in `direction` started. */
  account(direction: Direction, bytes: number): void {
    const units = this.cfg.opSize && bytes > this.cfg.opSize ? bytes / this.cfg.opSize : 1;
    const add = (name: BucketName, n: number) => {
      const bkt = this.cfg.buckets[name];
      bkt.level += n;
      if (bkt.burstLength > 1) bkt.burstLevel += n;
    };
    add('bps-total', bytes);
    add(`bps-${direction}`, bytes);
    add('iops-total', units);
    add(`iops-${direction}`, units);
  }

  /** throttle_do_leak: every bucket leaks in proportion to the time since the last leak. */
  private leak(now: number): void {
    const delta = now - this.previousLeak;
    this.previousLeak = now;
    if (delta <= 0) return;
    for (const b of BUCKETS) leakBucket(this.cfg.buckets[b], delta);
  }
}

/** throttle_leak_bucket. */
function leakBucket(bkt: LeakyBucket, deltaNs: number): void {
  bkt.level = Math.max(bkt.level - (bkt.avg * deltaNs) / NS_PER_SECOND, 0);
  // Bursts longer than a second also track the burst level, so `max` holds per second.
  if (bkt.burstLength > 1) {
    bkt.burstLevel = Math.max(bkt.burstLevel - (bkt.max * deltaNs) / NS_PER_SECOND, 0);
  }
}

/**
 * throttle_compute_wait: nanoseconds until `bkt` lets a request through. Without a burst rate the
 * bucket holds avg/10 units (a tenth of a second at the average rate, so that short bursts pass);
 * with one it holds max * burstLength, and while not full the burst level must stay below max/10.
 */
export function bucketWait(bkt: LeakyBucket): number {
  if (!bkt.avg) return 0;
  const size = bkt.max ? bkt.max * bkt.burstLength : bkt.avg / 10;
  const extra = bkt.level - size;
  if (extra > 0) return Math.trunc((extra * NS_PER_SECOND) / bkt.avg);
  if (bkt.burstLength > 1) {
    const burstExtra = bkt.burstLevel - bkt.max / 10;
    if (burstExtra > 0) return Math.trunc((burstExtra * NS_PER_SECOND) / bkt.max);
  }
  return 0;
}
