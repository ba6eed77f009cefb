import { execFile, spawn } from 'node:child_process';
import { copyFile, mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../src/cli/boot.ts';

const ROOT = join(import.meta.dirname, '../..');
const GUEST = join(ROOT, 'guest/out/guest.raw');

/** The layout scripts/build-guest.sh writes next to the image. */
interface GuestManifest {
  pattern: { offset: number; bytes: number; line: string };
}

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `blockgraph boot ...` as a user would, stdin not a terminal. */
function boot(args: string[]): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(ROOT, 'bin/blockgraph.js'), 'boot', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function readRange(path: string, offset: number, bytes: number): Promise<Buffer> {
  const file = await open(path);
  try {
    const buf = Buffer.alloc(bytes);
    await file.read(buf, 0, bytes, offset);
    return buf;
  } finally {
    await file.close();
  }
}

/** Runs the command in-process, for the argument errors (no machine starts). */
async function runHere(args: string[]): Promise<{ code: number; err: string }> {
  let err = '';
  const code = await run(args, { out: () => {}, err: (t) => void (err += t) });
  return { code, err };
}

describe('blockgraph boot', () => {
  let dir: string;
  let image: string;
  let manifest: GuestManifest;

  beforeAll(async () => {
    // Idempotent: a fraction of a second when the guest is up to date.
    await promisify(execFile)('bash', [join(ROOT, 'scripts/build-guest.sh')], { timeout: 300_000 });
    manifest = JSON.parse(await readFile(join(ROOT, 'guest/out/guest.json'), 'utf8')) as GuestManifest;
    dir = await mkdtemp(join(tmpdir(), 'blockgraph-boot-'));
    image = join(dir, 'guest.raw');
    await copyFile(GUEST, image);
  }, 300_000);

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('boots the Debian guest from a raw image through the graph; its disk checks pass', async () => {
    const drive = `file=${image},format=raw,if=ide`;
    const r = await boot(['-drive', drive, '--until', 'BLOCKGRAPH-GUEST-DONE', '--timeout', '90', '--stats']);
    expect(r.stderr).toMatch(/^hda \(ide0-hd0\): [1-9]\d* reads, \d+ bytes; [1-9]\d* writes/m);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).not.toMatch(/BLOCKGRAPH-CHECK \S+ FAIL/);
    const done = /^BLOCKGRAPH-GUEST-DONE pass=(\d+) fail=0\r?$/m.exec(r.stdout);
    expect(done, r.stdout).not.toBeNull();
    expect(Number(done![1])).toBeGreaterThanOrEqual(3);

    // The guest's O_DIRECT write went through the graph into the image file itself.
    const { offset, bytes, line } = manifest.pattern;
    const expected = Buffer.from(`${line}\n`.repeat(Math.ceil(bytes / (line.length + 1)))).subarray(0, bytes);
    expect((await readRange(image, offset, bytes)).equals(expected)).toBe(true);
    expect((await readRange(GUEST, offset, bytes)).equals(expected)).toBe(false);
  }, 120_000);

  it('exits non-zero with a clear message when --until does not match in time', async () => {
    const r = await boot(['-hda', image, '--until', 'NEVER-PRINTED', '--timeout', '1']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      'blockgraph: boot: timed out after 1 s: no serial line matched /NEVER-PRINTED/',
    );
  }, 30_000);

  it("refuses bad arguments with qemu-system's texts", async () => {
    expect(await runHere(['-foo'])).toEqual({ code: 1, err: 'blockgraph: -foo: invalid option\n' });
    expect(await runHere(['-drive'])).toEqual({ code: 1, err: 'blockgraph: -drive: requires an argument\n' });
    expect((await runHere(['-m', 'abc', image])).err).toMatch(
      /^blockgraph: -m abc: Parameter 'size' expects a non-negative number below 2\^64\n/,
    );
    expect(await runHere(['-drive', 'file=/nonexistent.img,format=raw'])).toEqual({
      code: 1,
      err: "blockgraph: -drive file=/nonexistent.img,format=raw: Could not open '/nonexistent.img': No such file or directory\n",
    });
    expect((await runHere(['-drive', `file=${image},format=raw,if=ide,index=3`])).err).toBe(
      `blockgraph: -drive file=${image},format=raw,if=ide,index=3: machine type does not support if=ide,bus=1,unit=1\n`,
    );
    expect((await runHere(['-hda', image, '-drive', `file=${image},format=raw,index=0`])).err).toBe(
      `blockgraph: -drive file=${image},format=raw,index=0: drive with bus=0, unit=0 (index=0) exists\n`,
    );
  });

  it("places -drive/-device on v86's IDE slots with qemu-system's errors (no machine starts)", async () => {
    const none = ['-drive', `file=${image},format=raw,if=none,id=d0`];
    const err = async (args: string[]) => (await runHere(args)).err;
    expect(await err(['-hda', image, '-device', 'ide-hd,drive=nope'])).toBe(
      "blockgraph: -device ide-hd,drive=nope: Property 'ide-hd.drive' can't find value 'nope'\n",
    );
    expect(await err(['-hda', image, ...none, '-device', 'ide-hd,drive=d0,bus=ide.0,unit=0'])).toBe(
      'blockgraph: -device ide-hd,drive=d0,bus=ide.0,unit=0: IDE unit 0 is in use\n',
    );
    expect(await err(['-hda', image, '-device', 'ide-hd,drive=ide0-hd0'])).toBe(
      "blockgraph: -device ide-hd,drive=ide0-hd0: Drive 'ide0-hd0' is already in use because it has been " +
        "automatically connected to another device (did you need 'if=none' in the drive options?)\n",
    );
    expect(await err([...none, '-device', 'ide-hd,drive=d0', '-device', 'ide-hd,drive=d0'])).toBe(
      "blockgraph: -device ide-hd,drive=d0: Drive 'd0' is already in use by another device\n",
    );
    expect(await err([...none, '-device', 'ide-hd,drive=d0,bus=ide.5'])).toBe(
      "blockgraph: -device ide-hd,drive=d0,bus=ide.5: Bus 'ide.5' not found\n",
    );
    expect(await err([...none, '-device', 'ide-hd,drive=d0,unit=2'])).toBe(
      "blockgraph: -device ide-hd,drive=d0,unit=2: Can't create IDE unit 2, bus supports only 2 units\n",
    );
    // QEMU accepts these; v86's IDE has no such device there.
    expect(await err(['-hda', image, '-device', 'ide-cd,bus=ide.0'])).toBe(
      'blockgraph: -device ide-cd,bus=ide.0: v86 has no ide-cd at ide.0 unit 1 ' +
        '(only ide-hd at ide.0 units 0 and 1, ide-cd at ide.1 unit 0)\n',
    );
    expect(await err(['-hdb', image])).toBe(
      'blockgraph: v86 has a disk at ide.0 unit 1 (hdb) only together with one at unit 0 (hda)\n',
    );
    expect(await err(['-hda', image, '-boot', 'order=cc'])).toBe(
      "blockgraph: -boot order=cc: Boot device 'c' was given twice\n",
    );
    expect(await err(['-hda', image, '-boot', 'x'])).toBe("blockgraph: -boot x: Invalid boot device 'x'\n");
  });
});
