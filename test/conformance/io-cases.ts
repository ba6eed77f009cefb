/**
 * The I/O cases every block node must pass, protocol or format: each registers with the harness
 * only when the row's capabilities say it applies. Images are small (1 MiB) except where an
 * offset above 2^40 is the point, and then only sparse rows run them.
 */
import {
  check,
  checkBytes,
  checkIOError,
  Opened,
  prng,
  randomBytes,
  withImage,
  type Harness,
  type SuiteEntry,
} from './harness.ts';

const MiB = 1 << 20;
const SIZE = MiB;
const SECTOR = 512;

export function ioCases(h: Harness, entry: SuiteEntry): void {
  const caps = entry.caps;
  h.it('a new image has its size and reads as zeros', () =>
    withImage(entry, SIZE, async (img) => {
      check(img.node.length() === SIZE, `length ${img.node.length()} != ${SIZE}`);
      checkBytes(await img.read(0, SIZE), new Uint8Array(SIZE), 'whole image');
    }),
  );
  if (caps.writable) writableCases(h, entry);
  else if (caps.readOnly) {
    h.it('refuses writes with EPERM and keeps the data', () =>
      withImage(entry, SIZE, async (img) => {
        const before = await img.read(4096, 8192);
        await checkIOError(img.node.write(4096, new Uint8Array(8192).fill(0x5a)), 'EPERM', 'write');
        await checkIOError(img.node.writeZeroes(0, 512), 'EPERM', 'writeZeroes');
        checkBytes(await img.read(4096, 8192), before, 'after write');
      }),
    );
  } else {
    h.it('drops writes: reads are the same before and after', () =>
      withImage(entry, SIZE, async (img) => {
        const before = await img.read(4096, 8192);
        await img.node.write(4096, new Uint8Array(8192).fill(0x5a));
        await img.node.writeZeroes(0, 512);
        await img.node.flush();
        checkBytes(await img.read(4096, 8192), before, 'after write');
      }),
    );
  }
  if (caps.sparse) sparseCases(h, entry);
  if (caps.growable) growableCases(h, entry);
  else if (!caps.readOnly) {
    h.it('refuses writes past the end', () =>
      withImage(entry, SIZE, async (img) => {
        const errno = caps.beyondEndErrno ?? 'EIO';
        await checkIOError(
          img.node.write(SIZE - SECTOR, new Uint8Array(2 * SECTOR)),
          errno,
          'write across end',
        );
        await checkIOError(img.node.write(SIZE + SECTOR, new Uint8Array(1)), errno, 'write past end');
        check(img.node.length() === SIZE, 'length changed by a refused write');
      }),
    );
  }
  if (entry.caps.readOnlyRefused) {
    h.it('refuses to open read-only', () =>
      withImage(entry, SIZE, async (_img, image) => {
        const refused = await Opened.open(image, { 'read-only': true }).then(
          async (ro) => void (await ro.close()),
          (err: Error) => err.message,
        );
        check(refused === 'Block node is read-only', `read-only open: ${String(refused)}`);
      }),
    );
  } else
    h.it('refuses writes on a read-only node with EPERM', () =>
      withImage(entry, SIZE, async (_img, image) => {
        const ro = await Opened.open(image, { 'read-only': true });
        try {
          checkBytes(await ro.read(0, SECTOR), new Uint8Array(SECTOR), 'read-only read');
          await checkIOError(ro.node.write(0, new Uint8Array(SECTOR)), 'EPERM', 'write');
          await checkIOError(ro.node.writeZeroes(0, SECTOR), 'EPERM', 'writeZeroes');
          await checkIOError(ro.node.discard(0, SECTOR), 'EPERM', 'discard');
          await checkIOError(ro.node.truncate(2 * SIZE), 'EPERM', 'truncate');
        } finally {
          await ro.close();
        }
      }),
    );
  h.it('block status never claims zeros where data is', () =>
    withImage(entry, SIZE, async (img) => {
      if (caps.writable) {
        await img.node.write(70_000, new Uint8Array(100_000).fill(7));
        await img.node.write(SIZE - 3, new Uint8Array([1, 2, 3]));
      }
      const checkExtent = async (offset: number): Promise<number> => {
        const st = await img.node.blockStatus(offset, SIZE - offset);
        check(st.bytes >= 1 && st.bytes <= SIZE - offset, `status at ${offset}: ${st.bytes} bytes`);
        if (st.zero)
          checkBytes(await img.read(offset, st.bytes), new Uint8Array(st.bytes), `zero extent at ${offset}`);
        return st.bytes;
      };
      // Walk the whole image, and also ask starting inside the written ranges.
      for (let offset = 0; offset < SIZE;) offset += await checkExtent(offset);
      for (const offset of [70_000, 131_072, SIZE - 3]) await checkExtent(offset);
    }),
  );
}

function writableCases(h: Harness, entry: SuiteEntry): void {
  h.it('random aligned and unaligned I/O matches a shadow copy', () =>
    withImage(entry, SIZE, async (img) => {
      const rand = prng(0x5eed);
      const shadow = new Uint8Array(SIZE);
      for (let op = 0; op < 300; op++) {
        const aligned = rand(2) === 0;
        const unit = aligned ? SECTOR : 1;
        const len = Math.max(unit, rand(Math.floor((140 * 1024) / unit)) * unit);
        const offset = rand(Math.floor((SIZE - len) / unit) + 1) * unit;
        if (rand(3) === 0) {
          checkBytes(await img.read(offset, len), shadow.subarray(offset, offset + len), `op ${op} read`);
        } else {
          const data = randomBytes(rand, len);
          await img.node.write(offset, data);
          shadow.set(data, offset);
        }
      }
      checkBytes(await img.read(0, SIZE), shadow, 'whole image');
    }),
  );

  h.it('zero writes, with and without unmap', () =>
    withImage(entry, SIZE, async (img) => {
      const shadow = new Uint8Array(SIZE).fill(0xa5);
      await img.node.write(0, shadow);
      const ranges: [number, number, boolean][] = [
        [0, SECTOR, false],
        [1000, 3, true],
        [65_536 - 100, 200_000, true],
        [300_001, 65_536, false],
        [SIZE - 777, 777, true],
      ];
      for (const [offset, bytes, unmap] of ranges) {
        await img.node.writeZeroes(offset, bytes, { unmap });
        shadow.fill(0, offset, offset + bytes);
      }
      checkBytes(await img.read(0, SIZE), shadow, 'after zero writes');
    }),
  );

  h.it('discard leaves other data alone (and zeroes where guaranteed)', () =>
    withImage(entry, SIZE, async (img) => {
      const shadow = randomBytes(prng(7), SIZE);
      await img.node.write(0, shadow);
      const ranges: [number, number][] = [
        [0, 64 * 1024],
        [100_000, 300_000],
        [SIZE - 1000, 1000],
      ];
      for (const [offset, bytes] of ranges) await img.node.discard(offset, bytes);
      const after = await img.read(0, SIZE);
      for (const [offset, bytes] of ranges) {
        if (entry.caps.discardZeroes) shadow.fill(0, offset, offset + bytes);
        else shadow.set(after.subarray(offset, offset + bytes), offset);
      }
      checkBytes(after, shadow, 'after discard');
    }),
  );

  h.it('flush, and FUA writes, keep the data', () =>
    withImage(entry, SIZE, async (img) => {
      const a = randomBytes(prng(11), 5000);
      await img.node.write(123, a);
      await img.node.flush();
      await img.node.write(200_000, a, { fua: true });
      checkBytes(await img.read(123, 5000), a, 'flushed write');
      checkBytes(await img.read(200_000, 5000), a, 'FUA write');
    }),
  );

  h.it('reads crossing the end return data, then zeros', () =>
    withImage(entry, SIZE, async (img) => {
      await img.node.write(SIZE - 4, new Uint8Array([1, 2, 3, 4]));
      checkBytes(await img.read(SIZE - 4, 8), new Uint8Array([1, 2, 3, 4, 0, 0, 0, 0]), 'read across end');
    }),
  );

  h.it('concurrent non-overlapping requests all land', () =>
    withImage(entry, SIZE, async (img) => {
      const rand = prng(21);
      const shadow = new Uint8Array(SIZE);
      const slot = SIZE / 32;
      const requests = Array.from({ length: 32 }, (_, i) => {
        const data = randomBytes(rand, slot - 1 - (i % 7));
        const offset = i * slot + (i % 7);
        shadow.set(data, offset);
        return img.node.write(offset, data);
      });
      await Promise.all(requests);
      checkBytes(await img.read(0, SIZE), shadow, 'after concurrent writes');
    }),
  );

  h.it('concurrent overlapping writes leave each byte from one of its writers', () =>
    withImage(entry, SIZE, async (img) => {
      // No ordering is promised between overlapping requests in flight at the node level, so the
      // only guarantee is per byte: it holds the value of one of the writes covering it.
      const rand = prng(33);
      const writes = Array.from({ length: 8 }, (_, i) => {
        const offset = rand(100_000);
        return { offset, end: offset + 30_000 + rand(100_000), value: i + 1 };
      });
      await Promise.all(
        writes.map((w) => img.node.write(w.offset, new Uint8Array(w.end - w.offset).fill(w.value))),
      );
      const got = await img.read(0, 256 * 1024);
      for (let i = 0; i < got.length; i++) {
        const allowed = writes.filter((w) => i >= w.offset && i < w.end).map((w) => w.value);
        const ok = allowed.length ? allowed.includes(got[i]!) : got[i] === 0;
        check(ok, `byte ${i} is ${got[i]}, expected one of [${allowed.join(', ') || 0}]`);
      }
    }),
  );

  if (entry.caps.persistent) {
    h.it('data survives close and reopen', () =>
      withImage(entry, SIZE, async (img, image) => {
        const data = randomBytes(prng(44), 300_000);
        await img.node.write(12_345, data);
        await img.node.flush();
        await img.close();
        const again = await Opened.open(image);
        try {
          check(again.node.length() === SIZE, `length after reopen ${again.node.length()}`);
          checkBytes(await again.read(12_345, data.length), data, 'after reopen');
          checkBytes(await again.read(0, 12_345), new Uint8Array(12_345), 'untouched head');
        } finally {
          await again.close();
        }
      }),
    );
  }
}

function growableCases(h: Harness, entry: SuiteEntry): void {
  h.it('resize: growing reads zeros, shrinking forgets the cut data', () =>
    withImage(entry, SIZE, async (img) => {
      const data = randomBytes(prng(55), SIZE);
      await img.node.write(0, data);
      await img.node.truncate(3 * SIZE);
      check(img.node.length() === 3 * SIZE, `grown length ${img.node.length()}`);
      checkBytes(await img.read(0, SIZE), data, 'old data after growing');
      checkBytes(await img.read(SIZE, 2 * SIZE), new Uint8Array(2 * SIZE), 'new area');
      await img.node.truncate(SIZE / 2 + 3);
      // Node lengths are whole sectors, as QEMU's bdrv_getlength() reports them.
      check(img.node.length() === sectors(SIZE / 2 + 3), `shrunk length ${img.node.length()}`);
      await img.node.truncate(SIZE);
      checkBytes(await img.read(0, SIZE / 2 + 3), data.subarray(0, SIZE / 2 + 3), 'kept data');
      checkBytes(await img.read(SIZE / 2 + 3, SIZE / 2 - 3), new Uint8Array(SIZE / 2 - 3), 'regrown area');
    }),
  );

  h.it('a write past the end grows the image', () =>
    withImage(entry, SIZE, async (img) => {
      const data = randomBytes(prng(66), 1000);
      await img.node.write(SIZE + 5000, data);
      check(img.node.length() === sectors(SIZE + 6000), `length ${img.node.length()}`);
      checkBytes(await img.read(SIZE, 5000), new Uint8Array(5000), 'gap');
      checkBytes(await img.read(SIZE + 5000, 1000), data, 'written past the end');
    }),
  );
}

function sparseCases(h: Harness, entry: SuiteEntry): void {
  const big = 2 ** 40 + 4 * MiB;
  h.it('offsets above 2^32 and 2^40', () =>
    withImage(entry, big, async (img) => {
      check(img.node.length() === big, `length ${img.node.length()}`);
      const spots = [2 ** 32 - 700, 2 ** 40 - 1, 2 ** 40 + 3 * MiB + 12_345];
      const rand = prng(77);
      const written = spots.map((offset) => ({ offset, data: randomBytes(rand, 1400) }));
      if (!entry.caps.readOnly) for (const w of written) await img.node.write(w.offset, w.data);
      for (const w of written) {
        const expected = entry.caps.writable ? w.data : new Uint8Array(w.data.length);
        checkBytes(await img.read(w.offset, w.data.length), expected, `at ${w.offset}`);
      }
      checkBytes(await img.read(2 ** 36, 4096), new Uint8Array(4096), 'between the writes');
    }),
  );
}

/** `bytes` rounded up to whole 512-byte sectors. */
function sectors(bytes: number): number {
  return Math.ceil(bytes / 512) * 512;
}
