/**
 * null-co (QEMU block/null.c): a device of a given size that drops every write, for benchmarks.
 * As in QEMU, reads leave the caller's buffer untouched unless `read-zeroes` is set (QEMU 7.2's
 * default is off: qemu-io then shows its own 0xab fill pattern), and block status reports the
 * range unallocated, or as zeros with `read-zeroes`. `latency-ns` delays every request.
 */
import type { BlockDriver, BlockDriverOps } from '../../block/driver.ts';
import { genericError } from '../../block/errors.ts';
import { withDefaults } from '../options.ts';

const OPTIONS = {
  size: { type: 'size', default: 1 << 30, help: 'size of the null block' },
  'latency-ns': {
    type: 'int',
    default: 0,
    help: 'nanoseconds (approximated) to wait before completing request',
  },
  'read-zeroes': { type: 'bool', default: false, help: 'return zeroes when read' },
} as const;

const FILENAME = 'null-co://';

export const nullCoDriver = {
  name: 'null-co',
  kind: 'protocol',
  options: OPTIONS,
  capabilities: { writable: false, persistent: false, growable: false, discard: false, writeZeroes: false },
  protocols: ['null-co'],

  /** `null-co://` is the only filename, accepted so that `file=null-co://` works (null_co_parse_filename). */
  parseFilename(filename: string): Record<string, unknown> {
    if (filename !== FILENAME) {
      throw genericError(`The only allowed filename for this driver is '${FILENAME}'`);
    }
    return {};
  },

  async open(ctx): Promise<BlockDriverOps> {
    const opts = withDefaults(OPTIONS, ctx.options);
    const latencyNs = opts['latency-ns'] as number;
    if (latencyNs < 0) throw genericError('latency-ns is invalid');
    const size = opts.size as number;
    const readZeroes = opts['read-zeroes'] === true;
    const delay = (): Promise<void> =>
      latencyNs > 0 ? new Promise((resolve) => setTimeout(resolve, latencyNs / 1e6)) : Promise.resolve();
    return {
      length: () => size,
      filename: () => FILENAME,
      imageFacts: () => ({ actualSize: 0 }),
      read: async (_offset, dst) => {
        if (readZeroes) dst.fill(0);
        await delay();
      },
      write: delay,
      flush: delay,
      blockStatus: async (offset, bytes) => ({
        bytes,
        data: false,
        zero: readZeroes,
        allocated: readZeroes,
        depth: 0,
        offset,
      }),
    };
  },
} as const satisfies BlockDriver;
