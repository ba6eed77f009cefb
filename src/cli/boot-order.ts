/**
 * -boot for v86 (QEMU's vl.c boot options): `order=` (or the implied first value) names the boot
 * devices by letter, as QEMU's pc does: a, b floppy; c the first hard disk; d the first CD-ROM;
 * n-p network. v86 boots from what SeaBIOS reads in CMOS (three nibbles, first device lowest:
 * 1 floppy, 2 hard disk, 3 CD-ROM), so at most three devices count and there is no network boot.
 */
import { genericError } from '../block/errors.ts';
import { parseQemuOpts } from '../config/qemu-opts.ts';

const DEVICE_CODE: Readonly<Record<string, number>> = { a: 1, b: 1, c: 2, d: 3 };
/** -boot parameters QEMU has besides order; v86's SeaBIOS setup offers none of them. */
const OTHER_PARAMETERS = ['once', 'menu', 'splash', 'splash-time', 'reboot-timeout', 'strict'];

/** The v86 `boot_order` for a -boot argument; throws QEMU's texts (validate_bootdevices). */
export function parseBootOrder(value: string): number {
  const { options } = parseQemuOpts(value, 'order');
  for (const key of Object.keys(options)) {
    if (key === 'order') continue;
    if (OTHER_PARAMETERS.includes(key)) throw genericError(`-boot ${key}= is not supported by this machine`);
    throw genericError(`Parameter 'boot.${key}' is unexpected`);
  }
  const order = options.order ?? '';
  const codes: number[] = [];
  for (const [i, letter] of [...order].entries()) {
    if (letter < 'a' || letter > 'p') throw genericError(`Invalid boot device '${letter}'`);
    if (order.indexOf(letter) !== i) throw genericError(`Boot device '${letter}' was given twice`);
    const code = DEVICE_CODE[letter];
    if (code === undefined) throw genericError(`Boot device '${letter}' is not available on this machine`);
    if (!codes.includes(code)) codes.push(code);
  }
  return codes.slice(0, 3).reduce((acc, code, i) => acc | (code << (4 * i)), 0);
}
