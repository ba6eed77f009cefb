/**
 * One guest boot in Chromium for what needs a running machine in the browser: guest-visible
 * write errors (blkdebug) with werror=report and werror=stop + cont, and savevm → page reload →
 * loadvm with the images in OPFS. The guest runs its shell; hda is a qcow2 overlay in OPFS over
 * the raw image on an HTTP server, hdb a small qcow2 in OPFS, each under a blkdebug filter.
 * After the reload a new machine (of the same configuration) gets the saved state: the same shell
 * process answers with the RAM and the disks of the savevm moment; once a disk's snapshot is
 * made again, the state is refused.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect, test, type Page } from '@playwright/test';
import { TestHttpServer } from '../test/support/http-server.ts';
import type { SessionRequest } from './fixtures/boot-session.ts';

type Fixture = typeof import('./fixtures/boot-session.ts');
const FIXTURE = `/@fs${fileURLToPath(new URL('./fixtures/boot-session.ts', import.meta.url))}`;
const GUEST = fileURLToPath(new URL('../guest/out/', import.meta.url));
const manifest = JSON.parse(readFileSync(`${GUEST}guest.json`, 'utf8')) as {
  bytes: number;
  partitions: { offset: number }[];
  ioerror: { offset: number };
};
const P2 = manifest.partitions[1]!.offset;
/** A sector of partition 2 that no mode of the guest uses while its shell runs. */
const MARK_SECTOR = 4608;
/** A boot takes ~15 s on a quiet machine, several times that on a loaded one. */
const BOOT_TIMEOUT = 360_000;
const COMMAND_TIMEOUT = 120_000;
const DESCRIPTION = 'v86 memory=64M hda hdb';

const HDA = 'savevm/hda.qcow2';
const HDB = 'savevm/hdb.qcow2';
/** The drives, the same on both page loads (loadvm wants the devices savevm saved with). */
const drives = (): Pick<SessionRequest, 'hda' | 'hdb' | 'description'> => ({
  description: DESCRIPTION,
  // hda: the guest's write to its ioerror block fails every time; werror=report.
  hda: {
    id: 'hda',
    node: blkdebug(HDA, { sector: manifest.ioerror.offset / 512 }),
    werror: 'report',
  },
  // hdb: the first write to its sector 0 fails; werror=stop, and `cont` retries it.
  hdb: { id: 'hdb', node: blkdebug(HDB, { sector: 0, once: true }), werror: 'stop' },
});

function blkdebug(filename: string, rule: Record<string, unknown>): Record<string, unknown> {
  return {
    driver: 'blkdebug',
    image: { driver: 'qcow2', file: { driver: 'opfs', filename } },
    'inject-error': [{ event: 'pwritev', iotype: 'write', ...rule }],
  };
}

let server: TestHttpServer;
test.beforeAll(async () => {
  server = await TestHttpServer.start();
  await server.serveFile('/guest.raw', `${GUEST}guest.raw`);
});
test.afterAll(async () => {
  await server.close();
});

async function load(page: Page, reload = false): Promise<void> {
  await (reload ? page.reload() : page.goto('/'));
  await expect(page.locator('#status')).toHaveText('WebAssembly worker ready', { timeout: 60_000 });
}

/** Calls `name` of the page's session module with `args`. */
function call<K extends keyof Fixture>(
  page: Page,
  name: K,
  ...args: Parameters<Fixture[K]>
): Promise<Awaited<ReturnType<Fixture[K]>>> {
  return page.evaluate(
    async ([url, name, args]) => {
      const fixture = (await import(url)) as Record<string, (...a: unknown[]) => unknown>;
      return fixture[name]!(...args);
    },
    [FIXTURE, name, args] as const,
  ) as Promise<Awaited<ReturnType<Fixture[K]>>>;
}

let marks = 0;
/** Runs `command` in the guest's shell; its output lines. */
async function shell(page: Page, command: string): Promise<string[]> {
  const mark = `M${++marks}`;
  const from = await call(page, 'send', command, mark);
  return call(page, 'output', mark, from, COMMAND_TIMEOUT);
}

const hmp = (page: Page, line: string) =>
  call(page, 'execute', 'human-monitor-command', { 'command-line': line });

/** Leaves `text` in the guest's RAM (/tmp is the initramfs) and on hda. */
const mark = (text: string) =>
  `echo MEM-${text} > /tmp/mark; echo DISK-${text} | dd of=/dev/sda2 bs=512 seek=${MARK_SECTOR} conv=sync,fsync oflag=direct 2>/dev/null`;
/** What the guest sees: the RAM mark, hda's mark and hdb's first line, read uncached. */
const SHOW =
  `cat /tmp/mark; dd if=/dev/sda2 bs=512 skip=${MARK_SECTOR} count=1 iflag=direct 2>/dev/null | head -n 1; ` +
  'dd if=/dev/sdb bs=512 count=1 iflag=direct 2>/dev/null | head -n 1';

test('write errors (report, stop + cont), then savevm, a page reload and loadvm from OPFS', async ({
  page,
}) => {
  test.setTimeout(2 * BOOT_TIMEOUT + 10 * COMMAND_TIMEOUT);
  await load(page);
  await call(page, 'start', {
    ...drives(),
    setup: [
      ...[HDA, HDB].map((filename, i) => [
        'blockdev-create',
        { 'job-id': `f${i}`, options: { driver: 'opfs', filename, size: 0 } },
      ]),
      [
        'blockdev-create',
        {
          'job-id': 'c0',
          options: {
            driver: 'qcow2',
            file: { driver: 'opfs', filename: HDA },
            size: manifest.bytes,
            'backing-file': `${server.origin}/guest.raw`,
            'backing-fmt': 'raw',
          },
        },
      ],
      [
        'blockdev-create',
        {
          'job-id': 'c1',
          options: { driver: 'qcow2', file: { driver: 'opfs', filename: HDB }, size: 1 << 20 },
        },
      ],
    ] as SessionRequest['setup'],
    control: { mode: 'shell' },
  });
  await call(page, 'waitForLine', '^blockgraph guest shell', BOOT_TIMEOUT);

  // werror=report: the guest's write fails with EIO and the machine runs on.
  const seek = (manifest.ioerror.offset - P2) / 4096;
  const failed = await shell(
    page,
    `head -c 4096 /dev/zero | tr '\\000' E | dd of=/dev/sda2 bs=4096 seek=${seek} oflag=direct 2>&1; echo status=$?`,
  );
  expect(failed.join('\n')).toMatch(/Input\/output error[\s\S]*status=1$/);
  // The guest's kernel retries the write a few times, each failing the same way.
  const reported = (await call(page, 'events')).filter((e) => e.event === 'BLOCK_IO_ERROR');
  expect(reported.length).toBeGreaterThan(0);
  for (const e of reported) {
    expect(e.data).toMatchObject({
      device: 'hda',
      operation: 'write',
      action: 'report',
      reason: 'Input/output error',
    });
  }
  expect(await call(page, 'execute', 'query-status')).toMatchObject({ running: true, status: 'running' });

  // werror=stop: the machine stops on hdb's failed write until `cont`, which retries it.
  const from = await call(
    page,
    'send',
    'echo STOP-MARK | dd of=/dev/sdb bs=512 conv=sync oflag=direct 2>&1; echo status=$?',
    'STOP',
  );
  await expect
    .poll(async () => (await call(page, 'events')).map((e) => e.event), { timeout: COMMAND_TIMEOUT })
    .toContain('STOP');
  expect((await call(page, 'events')).filter((e) => e.event === 'BLOCK_IO_ERROR').at(-1)?.data).toMatchObject(
    {
      device: 'hdb',
      operation: 'write',
      action: 'stop',
    },
  );
  expect(await call(page, 'execute', 'query-status')).toMatchObject({ running: false, status: 'io-error' });
  expect(await call(page, 'emulatorRunning')).toBe(false);
  expect(await call(page, 'execute', 'cont')).toEqual({});
  expect((await call(page, 'output', 'STOP', from, COMMAND_TIMEOUT)).at(-1)).toBe('status=0');
  expect(await call(page, 'readDrive', 1, 0, 10)).toBe('STOP-MARK\n');

  // savevm: RAM and disks at the moment of ONE; then both change to TWO.
  await shell(page, mark('ONE'));
  expect(await hmp(page, 'savevm s1')).toBe('');
  expect(await hmp(page, 'info snapshots')).toMatch(
    /List of snapshots present on all disks:\r?\n.*\r?\n--\s+s1\s+\d+(\.\d+)? MiB /,
  );
  await shell(
    page,
    `${mark('TWO')}; echo CHANGED | dd of=/dev/sdb bs=512 conv=sync oflag=direct 2>/dev/null`,
  );
  expect(await shell(page, SHOW)).toEqual(['MEM-TWO', 'DISK-TWO', 'CHANGED']);
  await call(page, 'stop');

  // A new page and worker: the images come from OPFS, the machine is a new one, booting afresh
  // until loadvm replaces its state.
  await load(page, true);
  await call(page, 'start', drives());
  expect(await hmp(page, 'loadvm s1')).toBe('');
  expect(await call(page, 'readDrive', 0, P2 + MARK_SECTOR * 512, 9)).toBe('DISK-ONE\n');
  expect(await call(page, 'readDrive', 1, 0, 10)).toBe('STOP-MARK\n');
  // The shell of the first page answers, from the RAM and disks of the savevm moment.
  expect(await shell(page, SHOW)).toEqual(['MEM-ONE', 'DISK-ONE', 'STOP-MARK']);

  // hdb's s1 made again, without a VM state: the saved state no longer belongs to the disks.
  await call(page, 'execute', 'blockdev-snapshot-delete-internal-sync', { device: 'hdb', name: 's1' });
  await call(page, 'execute', 'blockdev-snapshot-internal-sync', { device: 'hdb', name: 's1' });
  expect(await hmp(page, 'loadvm s1')).toBe(
    "Error: Snapshot 's1' on 'hdb' was not taken with its VM state: the disk has changed since\r\n",
  );
  // Nothing was reverted; as in QEMU, the failed loadvm leaves the machine stopped.
  expect(await call(page, 'readDrive', 1, 0, 10)).toBe('STOP-MARK\n');
  expect(await call(page, 'execute', 'query-status')).toMatchObject({ running: false });
  await call(page, 'stop');
});
