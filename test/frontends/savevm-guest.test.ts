/**
 * savevm / loadvm with the real test guest (one boot): the Debian guest runs its shell on a qcow2
 * disk served by the graph to v86; a command leaves a marker in its RAM (/tmp is the initramfs)
 * and on its disk; `savevm` over HMP; the markers change; `snapshot-load` over QMP brings back the
 * exact disk bytes of the savevm moment, and the shell, still running the same process, answers
 * with the first markers. qemu-img then finds the image clean and lists the VM SIZE.
 */
import { execFile, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BlockBackend } from '../../src/block/backend.ts';
import { writeGuestControl } from '../../src/frontends/guest-control.ts';
import { attachMachine } from '../../src/frontends/savevm.ts';
import { V86Disk } from '../../src/frontends/v86-disk.ts';
import { startNodeMachine } from '../../src/frontends/v86-node.ts';
import { BlockGraph } from '../../src/graph/graph.ts';
import { attachBackend } from '../../src/graph/drive.ts';
import { runJobCommand } from '../../src/jobs/job-command.ts';
import { localExecute } from '../../src/qmp/commands/local.ts';
import { QmpMonitor } from '../../src/qmp/monitor.ts';

type Message = Record<string, unknown>;
const ROOT = join(import.meta.dirname, '../..');
const MEMORY = 64 << 20;
/** A sector of partition 2 past the areas the guest's own checks use (2.25 MiB into it). */
const MARK_SECTOR = 4608;

let dir: string;
let image: string;

beforeAll(async () => {
  // Idempotent: a fraction of a second when the guest is up to date.
  await promisify(execFile)('bash', [join(ROOT, 'scripts/build-guest.sh')], { timeout: 300_000 });
  dir = await mkdtemp(join(tmpdir(), 'blockgraph-savevm-'));
  image = join(dir, 'guest.qcow2');
  spawnSync('qemu-img', ['convert', '-O', 'qcow2', join(ROOT, 'guest/out/guest.raw'), image]);
}, 300_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Collects the guest's serial output; `until` waits for a pattern in what came after `from`. */
class Console {
  text = '';
  byte(b: number): void {
    this.text += String.fromCharCode(b);
  }
  async until(pattern: RegExp, from: number, timeoutMs: number): Promise<string> {
    const end = Date.now() + timeoutMs;
    while (!pattern.test(this.text.slice(from))) {
      if (Date.now() > end) throw new Error(`no ${pattern} in serial output: ${this.text.slice(-600)}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return this.text.slice(from);
  }
}

async function diskHash(backend: BlockBackend): Promise<string> {
  const buf = new Uint8Array(backend.length());
  await backend.read(0, buf);
  return createHash('sha256').update(buf).digest('hex');
}

describe('savevm and loadvm of the test guest', () => {
  it('restore its RAM and disk exactly as they were at savevm', async () => {
    const monitor = new QmpMonitor((emit) => new BlockGraph(emit));
    const graph = monitor.graph;
    const replies: string[] = [];
    const session = monitor.connect((text) => replies.push(text));
    const execute = async (execute: string, args?: Message): Promise<Message> => {
      session.feed(`${JSON.stringify({ execute, ...(args && { arguments: args }) })}\n`);
      await session.idle();
      return replies
        .splice(0)
        .map((l) => JSON.parse(l) as Message)
        .at(-1)!;
    };
    await execute('qmp_capabilities');
    const node = await graph.open({
      driver: 'qcow2',
      'node-name': 'n0',
      file: { driver: 'file', filename: image },
    });
    const backend = await attachBackend(graph, 'ide0-hd0', node, {});
    await writeGuestControl(backend, { mode: 'shell' });
    const serial = new Console();
    const machine = await startNodeMachine({
      memorySize: MEMORY,
      hda: new V86Disk(backend),
      onSerialByte: (b) => serial.byte(b),
    });
    const detach = attachMachine(graph, { ...machine, description: `v86 memory=${MEMORY} hda` });
    const run = async (command: string, done: string) => {
      const from = serial.text.length;
      machine.sendSerial(new TextEncoder().encode(`${command}; echo ${done}-$((40+2))\n`));
      return serial.until(new RegExp(`${done}-42`), from, 30_000);
    };
    const mark = (text: string) =>
      `echo MEM-${text} > /tmp/mark; echo DISK-${text} | dd of=/dev/sda2 bs=512 seek=${MARK_SECTOR} conv=sync,fsync oflag=direct 2>/dev/null`;
    const show = `cat /tmp/mark; dd if=/dev/sda2 bs=512 skip=${MARK_SECTOR} count=1 iflag=direct 2>/dev/null | head -n 1`;
    try {
      await serial.until(/blockgraph guest shell[\s\S]*# /, 0, 150_000);
      await run(mark('ONE'), 'one');
      expect(await execute('human-monitor-command', { 'command-line': 'savevm boot1' })).toEqual({
        return: '',
      });
      const saved = await diskHash(backend);

      await run(mark('TWO'), 'two');
      expect(await run(show, 'shown')).toMatch(/MEM-TWO\r?\nDISK-TWO\r?\n/);
      expect(await diskHash(backend)).not.toBe(saved);

      const load = { 'job-id': 'load', tag: 'boot1', vmstate: 'n0', devices: ['n0'] };
      await runJobCommand(localExecute(graph), 'snapshot-load', load);
      expect(await diskHash(backend)).toBe(saved);
      // The same shell answers, with the RAM and the disk of the savevm moment.
      expect(await run(show, 'again')).toMatch(/MEM-ONE\r?\nDISK-ONE\r?\n/);
    } finally {
      detach();
      await machine.destroy();
      await backend.close();
    }
    const check = spawnSync('qemu-img', ['check', image], { encoding: 'utf8' });
    expect(check.stdout + check.stderr).toMatch(/No errors were found on the image/);
    const list = spawnSync('qemu-img', ['snapshot', '-l', image], { encoding: 'utf8' }).stdout;
    expect(list).toMatch(/\n1 +boot1 +\d+(\.\d+)? MiB \d{4}-\d\d-\d\d \d\d:\d\d:\d\d 00:00:00\.000 +\n/);
  }, 240_000);
});
