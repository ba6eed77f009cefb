/**
 * blkverify (QEMU 7.2 block/blkverify.c): checks the image under test against a raw copy of the
 * same data. Every read goes to both children, `test` and `raw`, and their contents are compared;
 * every write goes to both. Where QEMU prints the mismatch and exits, a mismatch here fails the
 * request with EIO and QEMU's text, which names the first differing offset:
 * "blkverify: read offset=4096 bytes=8192 contents mismatch at offset 8192". Requests whose two
 * halves fail differently fail likewise ("return value mismatch -5 != 0", negative errnos).
 *
 * As in QEMU: the length is the test image's, flush reaches the test image only, and there is no
 * native zero write, discard, block status or resize (zero writes become writes of zeros to both).
 */
import type { BlockDriver, BlockDriverOps } from '../../block/driver.ts';
import { BlockIOError, ERRNO_NUMBERS, errnoOf, genericError, ioError } from '../../block/errors.ts';
import type { BlockNode } from '../../block/node.ts';
import type { WriteFlags } from '../../block/types.ts';
import { childOrFilename } from './filename-child.ts';
import { childRefused } from './filter-base.ts';

const OPTIONS = {
  test: { type: 'child', role: 'test', help: 'the image under test' },
  raw: { type: 'child', role: 'raw', help: 'the raw image with the expected contents' },
  // What `blkverify:RAW:TEST` leaves for open, as QEMU's parse_filename does.
  'x-raw': { type: 'str', help: '[internal use only, will be removed]' },
  'x-image': { type: 'str', help: '[internal use only, will be removed]' },
} as const;

const PREFIX = 'blkverify:';

export const blkverifyDriver = {
  name: 'blkverify',
  kind: 'filter',
  options: OPTIONS,
  capabilities: { writable: true, persistent: true, growable: false, discard: false, writeZeroes: false },
  protocols: ['blkverify'],

  /** `blkverify:RAW:TEST`: RAW is opened as a protocol node, TEST's format is probed. */
  parseFilename(filename: string): Record<string, unknown> {
    if (!filename.startsWith(PREFIX)) throw genericError("File name string must start with 'blkverify:'");
    const rest = filename.slice(PREFIX.length);
    const colon = rest.indexOf(':');
    if (colon < 0) throw genericError('blkverify requires raw copy and original image path');
    return { 'x-raw': rest.slice(0, colon), 'x-image': rest.slice(colon + 1) };
  },

  async open(ctx): Promise<BlockDriverOps> {
    const raw = await childOrFilename(ctx, 'raw', 'raw', ctx.options['x-raw'], false);
    const test = await childOrFilename(ctx, 'test', 'test', ctx.options['x-image'], true);
    return new Blkverify(test, raw);
  },
} as const satisfies BlockDriver;

class Blkverify implements BlockDriverOps {
  constructor(
    private test: BlockNode,
    private raw: BlockNode,
  ) {}

  length(): number {
    return this.test.length();
  }

  async read(offset: number, dst: Uint8Array): Promise<void> {
    const expected = new Uint8Array(dst.length);
    await this.both('read', offset, dst.length, this.test.read(offset, dst), this.raw.read(offset, expected));
    const at = dst.findIndex((b, i) => b !== expected[i]);
    if (at >= 0) throw mismatch('read', offset, dst.length, `contents mismatch at offset ${offset + at}`);
  }

  write(offset: number, src: Uint8Array, flags: WriteFlags): Promise<void> {
    return this.both(
      'write',
      offset,
      src.length,
      this.test.write(offset, src, flags),
      this.raw.write(offset, src, flags),
    );
  }

  /**
   * blkverify_co_flush flushes the test image ("the raw file is not important"); bdrv_co_flush
   * then flushes every child written to, so the raw image too.
   */
  async flush(): Promise<void> {
    await this.test.flush();
    await this.raw.flush();
  }

  /** A live graph change: `test` or `raw` becomes `node`; both must stay. */
  replaceChild(name: string, node: BlockNode | null): void {
    if (!node || (name !== 'test' && name !== 'raw')) throw childRefused(name, 'a blkverify node');
    if (name === 'test') this.test = node;
    else this.raw = node;
  }

  /** blkverify_co_prwv: both halves run; they must end alike, and a shared failure is passed on. */
  private async both(
    kind: 'read' | 'write',
    offset: number,
    bytes: number,
    test: Promise<void>,
    raw: Promise<void>,
  ): Promise<void> {
    const [t, r] = await Promise.allSettled([test, raw]);
    const code = (s: PromiseSettledResult<void>) =>
      s.status === 'fulfilled' ? 0 : -ERRNO_NUMBERS[errnoOf(s.reason)];
    if (code(t) !== code(r)) {
      throw mismatch(kind, offset, bytes, `return value mismatch ${code(t)} != ${code(r)}`);
    }
    if (t.status === 'rejected') throw t.reason;
  }
}

/** blkverify_err's text, as the message of an EIO. */
function mismatch(kind: 'read' | 'write', offset: number, bytes: number, what: string): BlockIOError {
  return ioError('EIO', `blkverify: ${kind} offset=${offset} bytes=${bytes} ${what}`);
}
