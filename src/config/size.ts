/**
 * Byte sizes as QEMU writes and reads them (util/cutils.c: qemu_strtosz and size_to_str;
 * qemu-img.c: cvtnum). Suffixes are powers of 1024 and case-insensitive: b/B (bytes), k, M, G,
 * T, P, E. A fraction needs a suffix (`1.5G`); hexadecimal is allowed (`0x1000`), octal is not.
 */
import { genericError } from '../block/errors.ts';

const SUFFIX_SHIFT: Readonly<Record<string, bigint>> = {
  B: 0n,
  K: 10n,
  M: 20n,
  G: 30n,
  T: 40n,
  P: 50n,
  E: 60n,
};

const U64_MAX = (1n << 64n) - 1n;
const I64_MAX = (1n << 63n) - 1n;

/** Why qemu_strtosz refused a string: not a size at all, or beyond 2^64 - 1. */
export type SizeFailure = 'EINVAL' | 'ERANGE';

export class SizeError extends Error {
  constructor(
    readonly reason: SizeFailure,
    message: string,
  ) {
    super(message);
    this.name = 'SizeError';
  }
}

// digits (decimal, or hex after 0x), an optional fraction, an optional suffix, nothing else.
const SIZE_RE = /^\s*\+?(0[xX][0-9a-fA-F]+|[0-9]+)(\.[0-9]*)?([bBkKmMgGtTpPeE])?$/;

/**
 * qemu_strtosz: the exact byte count `s` denotes, as a bigint in [0, 2^64).
 * Throws SizeError('EINVAL') for anything that is not a size, SizeError('ERANGE') above 2^64-1.
 * A fraction is truncated to whole bytes (`1.0000000001k` is 1024), as QEMU does.
 */
export function strtosz(s: string): bigint {
  const m = SIZE_RE.exec(s);
  if (!m) throw new SizeError('EINVAL', `invalid size '${s}'`);
  const [, digits, fraction, suffix] = m as unknown as [
    string,
    string,
    string | undefined,
    string | undefined,
  ];
  const hex = /^0[xX]/.test(digits);
  const shift = suffix ? SUFFIX_SHIFT[suffix.toUpperCase()]! : 0n;
  const frac = fraction && fraction.length > 1 ? fraction.slice(1) : '';
  // A fraction on a hex number, or without a scaling suffix, is refused (`0x1.8k`, `1.5`, `1.5b`).
  if (frac && /[1-9]/.test(frac) && (hex || shift === 0n))
    throw new SizeError('EINVAL', `invalid size '${s}'`);
  let bytes = BigInt(digits) << shift;
  if (frac) bytes += (BigInt(frac) << shift) / 10n ** BigInt(frac.length);
  if (bytes > U64_MAX) throw new SizeError('ERANGE', `size '${s}' out of range`);
  return bytes;
}

/**
 * A size argument of qemu-img (cvtnum): `what` names it in the error ('image size', 'offset').
 * Returns bytes; refuses what qemu_strtosz refuses and anything above INT64_MAX, with qemu-img's
 * texts (its EINVAL text spans two lines; the CLI prints each with the program prefix).
 */
export function parseSize(s: string, what = 'image size'): number {
  let bytes: bigint;
  try {
    bytes = strtosz(s);
  } catch (err) {
    if ((err as SizeError).reason !== 'ERANGE') throw genericError(suffixHint(what));
    bytes = U64_MAX;
  }
  if (bytes > I64_MAX) {
    throw genericError(`Invalid ${what} specified. Must be between 0 and ${I64_MAX}.`);
  }
  return Number(bytes);
}

function suffixHint(what: string): string {
  return (
    `Invalid ${what} specified. You may use k, M, G, T, P or E suffixes for\n` +
    'kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.'
  );
}
