import { describe, expect, it, vi } from 'vitest';
import { ioError } from '../../../src/block/errors.ts';
import { F, fbit, S, T } from './driver-sim.ts';
import { DISK, machine, memoryBackend, pattern, settle } from './setup.ts';

/** A device over a memory-node BlockBackend, driver initialized with every feature. */
async function ready(opts: Parameters<typeof memoryBackend>[0] = {}, serial?: string) {
  const env = await memoryBackend(opts);
  const m = machine(env.backend, { serial });
  m.drv.init();
  return { ...env, ...m };
}

/** Submits one request, kicks, and returns its completion. */
async function run(env: Awaited<ReturnType<typeof ready>>, spec: Parameters<typeof env.drv.submit>[0]) {
  env.drv.submit(spec);
  env.drv.kick();
  await settle(env.dev);
  const [c, ...rest] = env.drv.poll();
  expect(rest).toEqual([]);
  return c!;
}

describe('virtio-blk requests', () => {
  for (const indirect of [false, true]) {
    it(`writes and reads back through ${indirect ? 'an indirect table' : 'a descriptor chain'}`, async () => {
      const env = await ready();
      const data = pattern(12 * 512, 3);
      const w = await run(env, { type: T.OUT, sector: 40, out: data, pieces: 5, indirect });
      expect(w.status).toBe(S.OK);
      const onDisk = new Uint8Array(data.length);
      await env.backend.read(40 * 512, onDisk);
      expect(onDisk).toEqual(data);
      const r = await run(env, { type: T.IN, sector: 40, inLen: data.length, pieces: 7, indirect });
      expect(r.status).toBe(S.OK);
      expect(r.data).toEqual(data);
      expect(r.len).toBe(data.length + 1); // data and status byte, as QEMU 7.2 reports
    });
  }

  it('fails reads that are unaligned or beyond the capacity with IOERR, without touching the buffer', async () => {
    const env = await ready();
    expect((await run(env, { type: T.IN, sector: DISK / 512 - 1, inLen: 1024 })).status).toBe(S.IOERR);
    const odd = await run(env, { type: T.IN, sector: 0, inLen: 100 });
    expect(odd.status).toBe(S.IOERR);
    expect(odd.data).toEqual(new Uint8Array(100));
    expect((await run(env, { type: T.OUT, sector: 2 ** 60, out: new Uint8Array(512) })).status).toBe(S.IOERR);
  });

  it('passes FLUSH to the backend', async () => {
    const env = await ready();
    const flush = vi.spyOn(env.backend, 'flush');
    expect((await run(env, { type: T.FLUSH })).status).toBe(S.OK);
    expect(flush).toHaveBeenCalledOnce();
  });

  it('answers GET_ID with the serial, NUL-terminated only when shorter than 20 bytes', async () => {
    const short = await ready({}, 'bg-serial');
    const a = await run(short, { type: T.GET_ID, inLen: 20 });
    expect(a.status).toBe(S.OK);
    expect(new TextDecoder().decode(a.data.subarray(0, 10))).toBe('bg-serial\0');
    const long = await ready({}, 'abcdefghijklmnopqrstuvwxyz');
    const b = await run(long, { type: T.GET_ID, inLen: 20 });
    expect(new TextDecoder().decode(b.data)).toBe('abcdefghijklmnopqrst');
  });

  it('zeroes ranges with WRITE_ZEROES, passing the UNMAP flag on', async () => {
    const env = await ready();
    await env.backend.write(0, pattern(8192, 9));
    const wz = vi.spyOn(env.backend, 'writeZeroes');
    const seg = dwz(2, 4, 1);
    expect((await run(env, { type: T.WRITE_ZEROES, out: seg })).status).toBe(S.OK);
    expect(wz).toHaveBeenCalledWith(1024, 2048, { unmap: true });
    const back = new Uint8Array(8192);
    await env.backend.read(0, back);
    expect(back.subarray(1024, 3072)).toEqual(new Uint8Array(2048));
    expect(back.subarray(0, 1024)).toEqual(pattern(8192, 9).subarray(0, 1024));
  });

  it('discards, and refuses what QEMU refuses: UNMAP on discard, unknown flags, several segments', async () => {
    const env = await ready();
    const discard = vi.spyOn(env.backend, 'discard');
    expect((await run(env, { type: T.DISCARD, out: dwz(8, 8, 0) })).status).toBe(S.OK);
    expect(discard).toHaveBeenCalledWith(4096, 4096);
    expect((await run(env, { type: T.DISCARD, out: dwz(8, 8, 1) })).status).toBe(S.UNSUPP);
    expect((await run(env, { type: T.WRITE_ZEROES, out: dwz(8, 8, 2) })).status).toBe(S.UNSUPP);
    const two = new Uint8Array(32);
    two.set(dwz(0, 1, 0));
    two.set(dwz(4, 1, 0), 16);
    expect((await run(env, { type: T.DISCARD, out: two })).status).toBe(S.UNSUPP);
    expect((await run(env, { type: T.DISCARD, out: dwz(DISK / 512, 1, 0) })).status).toBe(S.IOERR);
    expect((await run(env, { type: T.WRITE_ZEROES, out: dwz(0, 4194304, 0) })).status).toBe(S.IOERR);
    expect(discard).toHaveBeenCalledOnce();
  });

  it('answers UNSUPP to discard and write-zeroes when the driver did not negotiate them', async () => {
    const env = await memoryBackend();
    const m = machine(env.backend);
    m.drv.init(fbit(F.VERSION_1));
    m.drv.submit({ type: T.DISCARD, out: dwz(0, 1, 0) });
    m.drv.submit({ type: T.WRITE_ZEROES, out: dwz(0, 1, 0) });
    m.drv.kick();
    await settle(m.dev);
    expect(m.drv.poll().map((c) => c.status)).toEqual([S.UNSUPP, S.UNSUPP]);
  });

  it('answers UNSUPP to an unknown request type', async () => {
    const env = await ready();
    expect((await run(env, { type: 7, inLen: 512 })).status).toBe(S.UNSUPP);
  });

  it('turns a failed backend request into IOERR under werror=report', async () => {
    const env = await ready({ werror: 'report' });
    env.node.ops.write = async () => {
      throw ioError('EIO');
    };
    expect((await run(env, { type: T.OUT, sector: 0, out: new Uint8Array(512) })).status).toBe(S.IOERR);
  });

  it('completes a failed read as OK under rerror=ignore, as the policy says', async () => {
    const env = await ready({ rerror: 'ignore' });
    env.node.ops.read = async () => {
      throw ioError('EIO');
    };
    expect((await run(env, { type: T.IN, sector: 0, inLen: 512 })).status).toBe(S.OK);
  });

  it('fails writes to a read-only drive with IOERR', async () => {
    const env = await ready({ readOnly: true });
    expect((await run(env, { type: T.OUT, sector: 0, out: new Uint8Array(512) })).status).toBe(S.IOERR);
  });
});

/** One `virtio_blk_discard_write_zeroes` segment. */
function dwz(sector: number, sectors: number, flags: number): Uint8Array {
  const b = new Uint8Array(16);
  const v = new DataView(b.buffer);
  v.setBigUint64(0, BigInt(sector), true);
  v.setUint32(8, sectors, true);
  v.setUint32(12, flags, true);
  return b;
}
