/**
 * Numbers, and the snapshot table made of them, formatted exactly as QEMU's tools print them.
 * C's printf rounds the exact binary value half-to-even, while JavaScript's toFixed rounds exact
 * ties up ("1.0625" → "1.063" instead of glibc's "1.062"), so the fixed-point conversion here
 * works on the exact value with BigInt.
 */
import type { SnapshotInfo } from '../block/driver.ts';

/** printf("%.<digits>f", value) with glibc's rounding; `inf`/`nan` as glibc prints them. */
export function formatFixed(value: number, digits: number): string {
  if (Number.isNaN(value)) return 'nan';
  if (!Number.isFinite(value)) return value > 0 ? 'inf' : '-inf';
  const negative = value < 0;
  const [mantissa, exp2] = decompose(Math.abs(value));
  // |value| * 10^digits = mantissa * 10^digits * 2^exp2, rounded half-to-even to an integer.
  let scaled = mantissa * 10n ** BigInt(digits);
  if (exp2 >= 0) {
    scaled <<= BigInt(exp2);
  } else {
    const divisor = 1n << BigInt(-exp2);
    const q = scaled / divisor;
    const twiceRem = (scaled % divisor) * 2n;
    scaled = twiceRem > divisor || (twiceRem === divisor && q % 2n === 1n) ? q + 1n : q;
  }
  const text = scaled.toString().padStart(digits + 1, '0');
  const point = text.length - digits;
  const body = digits > 0 ? `${text.slice(0, point)}.${text.slice(point)}` : text;
  return negative ? `-${body}` : body;
}

/** printf("%0.<precision>g", value) for non-negative finite values (QEMU's size_to_str). */
export function formatGeneral(value: number, precision: number): string {
  if (value === 0) return '0';
  let exp10 = Math.floor(Math.log10(value));
  let fixed = formatFixed(value, Math.max(0, precision - 1 - exp10));
  // Rounding may carry into a new leading digit (999.6 → "1000"): the exponent grows by one.
  if (fixed.replace('.', '').replace(/^0+/, '').length > precision) exp10++;
  if (exp10 < -4 || exp10 >= precision) {
    const mant = stripZeros(formatFixed(value / 10 ** exp10, precision - 1));
    const sign = exp10 < 0 ? '-' : '+';
    return `${mant}e${sign}${String(Math.abs(exp10)).padStart(2, '0')}`;
  }
  fixed = formatFixed(value, precision - 1 - exp10);
  return stripZeros(fixed);
}

function stripZeros(s: string): string {
  return s.includes('.') ? s.replace(/0+$/, '').replace(/\.$/, '') : s;
}

/** A finite positive double as mantissa * 2^exp2 with an integer mantissa. */
function decompose(value: number): [bigint, number] {
  if (value === 0) return [0n, 0];
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, value);
  const bits = view.getBigUint64(0);
  const biased = Number((bits >> 52n) & 0x7ffn);
  const fraction = bits & ((1n << 52n) - 1n);
  return biased === 0 ? [fraction, -1074] : [fraction | (1n << 52n), biased - 1075];
}

const SIZE_SUFFIXES = ['', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei'];

/** QEMU's size_to_str(): "0 B", "4 KiB", "1.5 MiB" (three significant digits). */
export function sizeToStr(bytes: number): string {
  // frexp(val / (1000.0 / 1024.0)) as in util/cutils.c: the unit switches at 1000, not 1024.
  const scaled = bytes / (1000 / 1024);
  const exp2 = scaled === 0 ? 0 : Math.floor(Math.log2(scaled)) + 1;
  const i = Math.max(0, Math.min(SIZE_SUFFIXES.length - 1, Math.trunc((exp2 - 1) / 10)));
  return `${formatGeneral(bytes / 2 ** (i * 10), 3)} ${SIZE_SUFFIXES[i]}B`;
}

const CVT_UNITS: readonly [number, string][] = [
  [2 ** 60, ' EiB'],
  [2 ** 50, ' PiB'],
  [2 ** 40, ' TiB'],
  [2 ** 30, ' GiB'],
  [2 ** 20, ' MiB'],
  [2 ** 10, ' KiB'],
];

/** qemu-io's cvtstr(): "%.3f" in the largest binary unit, ".000" dropped ("64 KiB", "1.500 KiB"). */
export function cvtstr(value: number): string {
  const unit = CVT_UNITS.find(([size]) => value >= size);
  const [text, suffix] = unit
    ? [formatFixed(value / unit[0], 3), unit[1]]
    : [formatFixed(value, 6), ' bytes'];
  const trim = text.indexOf('.000');
  return trim >= 0 ? text.slice(0, trim) + suffix : text + suffix;
}

/**
 * qemu-io's timestr(): "00.00 sec" below a second and "H:MM:SS.ss" from one second on (always
 * the latter when `verbose`, as -C's machine-readable line uses it).
 */
export function timestr(seconds: number, verbose = false): string {
  const whole = Math.floor(seconds);
  const frac = seconds - whole;
  if (whole === 0 && !verbose) return `${formatFixed(frac, 2).padStart(5, '0')} sec`;
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const s = formatFixed((whole % 60) + frac, 2).padStart(5, '0');
  return `${h}:${String(m).padStart(2, '0')}:${s}`;
}

/** The header bdrv_snapshot_dump prints (qemu-img snapshot -l, info, HMP info snapshots). */
export function snapshotDumpHeader(): string {
  return (
    'ID'.padEnd(10) +
    'TAG'.padEnd(17) +
    'VM SIZE'.padStart(8) +
    'DATE'.padStart(20) +
    'VM CLOCK'.padStart(13) +
    'ICOUNT'.padStart(11)
  );
}

/** bdrv_snapshot_dump: "%-9s %-16s %8s%20s%13s%11s" of one snapshot (QAPI SnapshotInfo). */
export function snapshotDumpLine(sn: SnapshotInfo): string {
  const clockMs = Math.floor((sn['vm-clock-sec'] * 1e9 + sn['vm-clock-nsec']) / 1e6);
  const secs = Math.floor(clockMs / 1000);
  const clock =
    `${pad2(Math.floor(secs / 3600))}:${pad2(Math.floor(secs / 60) % 60)}:${pad2(secs % 60)}.` +
    String(clockMs % 1000).padStart(3, '0');
  return (
    `${sn.id.padEnd(9)} ${sn.name.padEnd(16)} ` +
    sizeToStr(sn['vm-state-size']).padStart(8) +
    localDate(sn['date-sec']).padStart(20) +
    clock.padStart(13) +
    (sn.icount === undefined ? '' : String(sn.icount)).padStart(11)
  );
}

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}

/** "%Y-%m-%d %H:%M:%S" in the local time zone (g_date_time_new_from_unix_local). */
function localDate(seconds: number): string {
  const d = new Date(seconds * 1000);
  const date = `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}`;
  return `${date} ${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}
