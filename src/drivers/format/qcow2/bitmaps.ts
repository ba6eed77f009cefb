/**
 * The bitmap directory (qcow2.txt "Bitmap directory"), read only to report bitmaps in `info` as
 * QEMU's qcow2_get_bitmap_info_list does (QAPI Qcow2BitmapInfo); the bitmaps are not used yet.
 */
import { genericError } from '../../../block/errors.ts';
import { cString } from './extensions.ts';

/** Bitmap flags (bits 0 and 1 of the entry's flags): their QAPI names, in QAPI order. */
const FLAG_NAMES: readonly [number, string][] = [
  [1, 'in-use'],
  [2, 'auto'],
];

export interface BitmapInfo {
  readonly name: string;
  readonly granularity: number;
  readonly flags: readonly string[];
}

/** Parses a directory of `nb` entries held in `dir` (its bytes as read from the image). */
export function parseBitmapDirectory(dir: Uint8Array, nb: number): BitmapInfo[] {
  const out: BitmapInfo[] = [];
  const view = new DataView(dir.buffer, dir.byteOffset, dir.byteLength);
  let pos = 0;
  for (let i = 0; i < nb; i++) {
    if (pos + 24 > dir.length) throw genericError('Bitmap directory is corrupt');
    const flags = view.getUint32(pos + 12);
    const granularityBits = view.getUint8(pos + 17);
    const nameSize = view.getUint16(pos + 18);
    const extraSize = view.getUint32(pos + 20);
    const nameAt = pos + 24 + extraSize;
    if (nameAt + nameSize > dir.length) throw genericError('Bitmap directory is corrupt');
    out.push({
      // The JSON members appear in the order QEMU's output has them.
      flags: FLAG_NAMES.filter(([bit]) => (flags & bit) !== 0).map(([, name]) => name),
      name: cString(dir.subarray(nameAt, nameAt + nameSize)),
      granularity: 2 ** granularityBits,
    });
    pos = Math.ceil((nameAt + nameSize) / 8) * 8;
  }
  return out;
}
