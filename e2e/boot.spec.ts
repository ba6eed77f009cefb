/**
 * The test guest boots in Chromium: v86 in the page, its disks served by the blockgraph Worker
 * through drive handles (src/frontends/browser), the image on an HTTP server cross-origin to the
 * page: a raw image and a compressed qcow2 (each under a snapshot=on overlay), a qcow2 overlay in
 * OPFS that outlives a reload, and a data disk on virtio-blk; the first boot has a CD-ROM too.
 * Boots are slow (~15 s each), so each boot makes several checks: the guest's own
 * `BLOCKGRAPH-CHECK` lines and its summary, the requests the server saw, what v86 asked of the
 * drive, where the guest's writes landed.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test, type Page } from '@playwright/test';
import { TestHttpServer } from '../test/support/http-server.ts';
import type { BootReport, BootRequest } from './fixtures/boot.ts';

const FIXTURE = `/@fs${fileURLToPath(new URL('./fixtures/boot.ts', import.meta.url))}`;
const GUEST = fileURLToPath(new URL('../guest/out/', import.meta.url));
const manifest = JSON.parse(readFileSync(`${GUEST}guest.json`, 'utf8')) as {
  bytes: number;
  pattern: { offset: number; line: string };
};
/** Where the guest's check mode writes its pattern (lines of `line`), read back after a boot. */
const PATTERN = manifest.pattern.line + '\n';
const PROBE = { offset: manifest.pattern.offset, length: PATTERN.length };
/**
 * A boot takes ~15 s on a quiet machine (DESIGN.md §5) but 3–4 min with a load average of ~20 on
 * 2 cores: with 90 s, such a boot timed out in the kernel's init (emulator running, every disk
 * request answered) — the "hang under load". A limit costs nothing when the boot is fast.
 * Each test's own limit is its boots' plus a margin for the page and the worker.
 */
const BOOT_TIMEOUT = 300_000;
const DONE = '^BLOCKGRAPH-GUEST-DONE ';
/** The checks of the guest's default mode that exercise its disk. */
const CHECKS = ['seed-sha256', 'direct-write', 'write-loop'];

/** The CD-ROM's medium in the first boot. */
const CD = new Uint8Array(48 * 2048).map((_, i) => (i * 7 + (i >> 11)) & 255);

let server: TestHttpServer;
const dir = mkdtempSync(join(tmpdir(), 'blockgraph-e2e-boot-'));

test.beforeAll(async () => {
  server = await TestHttpServer.start();
  await server.serveFile('/guest.raw', `${GUEST}guest.raw`);
  // The guest build makes only the raw image; its compressed qcow2 copy is made here.
  const qcow2 = join(dir, 'guest.qcow2');
  execFileSync('qemu-img', ['convert', '-c', '-f', 'raw', '-O', 'qcow2', `${GUEST}guest.raw`, qcow2]);
  await server.serveFile('/guest.qcow2', qcow2);
  // A CD needs no file system: the guest reads /dev/sr0 raw. 2048-byte sectors, distinct.
  writeFileSync(join(dir, 'cd.iso'), CD);
  await server.serveFile('/cd.iso', join(dir, 'cd.iso'));
});

test.afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

test.beforeEach(async ({ page }) => {
  test.setTimeout(BOOT_TIMEOUT + 30_000);
  await server.reset();
  await page.goto('/');
  // The demo's worker being up means vite has bundled the dependencies: no reload mid-boot.
  await expect(page.locator('#status')).toHaveText('WebAssembly worker ready');
});

async function boot(page: Page, req: BootRequest): Promise<BootReport> {
  return page.evaluate(
    async ([url, req]) => ((await import(url)) as typeof import('./fixtures/boot.ts')).boot(req),
    [FIXTURE, req] as const,
  );
}

/**
 * The guest's verdict: every check line OK, `required` among them, and the summary counting
 * exactly those passes and no failure.
 */
function expectGuestPassed(lines: readonly string[], required: readonly string[]): void {
  const results = lines.filter((l) => l.startsWith('BLOCKGRAPH-CHECK '));
  expect(results.filter((l) => !/^BLOCKGRAPH-CHECK \S+ OK/.test(l))).toEqual([]);
  expect(results.map((l) => l.split(' ')[1])).toEqual(expect.arrayContaining([...required]));
  expect(lines.at(-1)).toBe(`BLOCKGRAPH-GUEST-DONE pass=${results.length} fail=0`);
}

/** Requests on `path` were ranged reads only: the image was never fetched whole nor written. */
function expectRangedReadsOnly(path: string): { requests: number; bytes: number } {
  const requests = server.requests(path, true).filter((r) => r.method !== 'OPTIONS');
  expect(requests.length).toBeGreaterThan(0);
  expect(requests.filter((r) => r.method !== 'GET' || r.status !== 206)).toEqual([]);
  return { requests: requests.length, bytes: requests.reduce((n, r) => n + r.bytes, 0) };
}

test('boots from a raw image over http (snapshot=on), every access through the graph; a CD-ROM', async ({
  page,
}) => {
  const url = `${server.origin}/guest.raw`;
  const report = await boot(page, {
    hda: { drive: `file=${url},format=raw,if=none,id=hda,snapshot=on` },
    cdrom: `file=${server.origin}/cd.iso,format=raw,if=none,id=cd0,media=cdrom`,
    until: DONE,
    timeoutMs: BOOT_TIMEOUT,
    probe: PROBE,
  });
  expectGuestPassed(report.lines, [...CHECKS, 'cdrom']);
  // The guest read the whole medium through the worker's drive.
  const cdHash = createHash('sha256').update(CD).digest('hex');
  expect(report.lines).toContain(`BLOCKGRAPH-CHECK cdrom OK sha256=${cdHash} bytes=${CD.length}`);
  // The guest's writes went through the drive (to the snapshot overlay), its reads too.
  expect(report.probes).toEqual([PATTERN]);
  expect(report.stats!.sets).toBeGreaterThan(0);
  expect(report.stats!.getBytes).toBeGreaterThan(4 << 20);
  const taken = expectRangedReadsOnly('/guest.raw');
  expect(taken.bytes).toBeLessThanOrEqual(manifest.bytes);
});

test('boots from a compressed qcow2 over http (snapshot=on)', async ({ page }) => {
  const report = await boot(page, {
    hda: { drive: `file=${server.origin}/guest.qcow2,format=qcow2,if=none,id=hda,snapshot=on` },
    until: DONE,
    timeoutMs: BOOT_TIMEOUT,
  });
  expectGuestPassed(report.lines, CHECKS);
  expect(report.stats!.sets).toBeGreaterThan(0);
  // Compressed clusters are smaller than what the guest read of them.
  const taken = expectRangedReadsOnly('/guest.qcow2');
  expect(taken.bytes).toBeLessThan(report.stats!.getBytes);
});

test('a qcow2 overlay in OPFS over an http base keeps what the guest wrote across a reload', async ({
  page,
}) => {
  test.setTimeout(2 * BOOT_TIMEOUT + 30_000);
  const url = `${server.origin}/guest.raw`;
  const overlay = 'boot/guest-overlay.qcow2';
  const baseHash = sha256(`${GUEST}guest.raw`);
  const drive = { id: 'hda', node: { driver: 'qcow2', file: { driver: 'opfs', filename: overlay } } };
  const persist = (lines: string[], boots: number) => {
    expect(lines).toContain(`BLOCKGRAPH-CHECK persist OK ${boots}`);
    expectGuestPassed(lines, ['persist']);
  };
  // The overlay names the base by its URL: reopened from OPFS alone, it finds it again.
  const first = await boot(page, {
    setup: [
      ['blockdev-create', { 'job-id': 'c0', options: { driver: 'opfs', filename: overlay, size: 0 } }],
      ['blockdev-add', { driver: 'opfs', 'node-name': 'overlay-file', filename: overlay }],
      [
        'blockdev-create',
        {
          'job-id': 'c1',
          options: {
            driver: 'qcow2',
            file: 'overlay-file',
            size: manifest.bytes,
            'backing-file': url,
            'backing-fmt': 'raw',
          },
        },
      ],
      ['blockdev-del', { 'node-name': 'overlay-file' }],
    ],
    hda: { drive },
    control: { mode: 'persist' },
    until: DONE,
    timeoutMs: BOOT_TIMEOUT,
  });
  persist(first.lines, 1);

  await page.reload();
  await expect(page.locator('#status')).toHaveText('WebAssembly worker ready');
  // No control block written this time: the one in the overlay still says mode=persist.
  const second = await boot(page, { hda: { drive }, until: DONE, timeoutMs: BOOT_TIMEOUT });
  persist(second.lines, 2);
  expectRangedReadsOnly('/guest.raw');
  expect(sha256(`${GUEST}guest.raw`)).toBe(baseHash);
});

test('boots from IDE with its data disk on virtio-blk', async ({ page }) => {
  const url = `${server.origin}/guest.raw`;
  const report = await boot(page, {
    hda: { drive: `file=${url},format=raw,if=none,id=hda,snapshot=on` },
    virtio: [`file=${url},format=raw,if=none,id=vda,snapshot=on`],
    control: { disk: '/dev/vda' },
    until: DONE,
    timeoutMs: BOOT_TIMEOUT,
    probe: PROBE,
  });
  expect(report.lines).toContain('BLOCKGRAPH-CHECK disk OK /dev/vda2');
  expectGuestPassed(report.lines, CHECKS);
  // The checks wrote to the virtio drive; the IDE disk's test area stayed as the image has it.
  expect(report.probes).toEqual([PATTERN.replace(/./gs, '\0'), PATTERN]);
});

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}
