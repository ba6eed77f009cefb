import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { BlockNode } from '../../../src/block/node.ts';
import { blkdebugDriver } from '../../../src/drivers/filter/blkdebug.ts';
import { BlockGraph } from '../../../src/graph/graph.ts';

const dir = mkdtempSync(join(tmpdir(), 'blockgraph-blkdebug-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** blkdebug over a 1 MiB memory node, under raw when `raw` (where raw signals read_aio/write_aio). */
async function stack(blkdebug: Record<string, unknown>, raw = true): Promise<BlockNode> {
  const node = { driver: 'blkdebug', image: { driver: 'memory', size: 1 << 20 }, ...blkdebug };
  return new BlockGraph().blockdevAdd(raw ? { driver: 'raw', file: node } : node);
}

/** Runs qemu-io-like commands; each result is 'ok' or the errno it failed with. */
async function run(node: BlockNode, ...cmds: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const cmd of cmds) {
    const [op, a = '0', b = '512'] = cmd.split(' ');
    const offset = Number(a);
    const len = Number(b);
    const request =
      op === 'read'
        ? node.read(offset, new Uint8Array(len))
        : op === 'write'
          ? node.write(offset, new Uint8Array(len).fill(0xcd))
          : op === 'zero'
            ? node.writeZeroes(offset, len)
            : op === 'discard'
              ? node.discard(offset, len)
              : op === 'map'
                ? node.blockStatus(offset, len)
                : node.flush();
    out.push(
      await request.then(
        () => 'ok',
        (err: { errno?: string }) => err.errno ?? String(err),
      ),
    );
  }
  return out;
}

const rule = (event: string, more: Record<string, unknown> = {}) => ({
  'inject-error': [{ event, ...more }],
});

// Each expectation is what qemu-io 7.2 printed for the same options and commands.
describe('blkdebug: when rules fire (checked against qemu-io)', () => {
  it('read_aio under raw fails the read, and stays active for the write', async () => {
    expect(await run(await stack(rule('read_aio')), 'read', 'write')).toEqual(['EIO', 'EIO']);
  });

  it('read_aio at the top never fires: nothing signals it there', async () => {
    expect(await run(await stack(rule('read_aio'), false), 'read', 'write')).toEqual(['ok', 'ok']);
  });

  it('pwritev fires on the node written to, even at the top', async () => {
    expect(await run(await stack(rule('pwritev'), false), 'read', 'write', 'read')).toEqual([
      'ok',
      'EIO',
      'EIO',
    ]);
  });

  it("flush_to_disk fires on the flushed node's child: not at the top, but under raw", async () => {
    expect(await run(await stack(rule('flush_to_disk'), false), 'flush', 'write')).toEqual(['ok', 'ok']);
    expect(await run(await stack(rule('flush_to_disk')), 'write', 'flush', 'read')).toEqual([
      'ok',
      'EIO',
      'EIO',
    ]);
  });

  it('sector limits the rule to requests covering it', async () => {
    const node = await stack(rule('read_aio', { sector: 1 }));
    expect(await run(node, 'read 0 512', 'read 1024 512', 'read 512 512', 'read 0 4096')).toEqual([
      'ok',
      'ok',
      'EIO',
      'EIO',
    ]);
  });

  it('once fails one request only', async () => {
    expect(await run(await stack(rule('read_aio', { once: true })), 'read', 'read', 'read')).toEqual([
      'EIO',
      'ok',
      'ok',
    ]);
  });

  it('errno chooses the error (28: No space left on device)', async () => {
    const node = await stack(rule('write_aio', { errno: 28 }));
    await expect(node.write(0, new Uint8Array(512))).rejects.toMatchObject({
      errno: 'ENOSPC',
      message: 'No space left on device',
    });
  });

  it('iotype limits the request types; block-status is only failed when asked', async () => {
    expect(await run(await stack(rule('write_aio', { iotype: 'write' })), 'write', 'read')).toEqual([
      'EIO',
      'ok',
    ]);
    expect(await run(await stack(rule('pwritev'), false), 'write', 'map', 'discard', 'zero')).toEqual([
      'EIO',
      'ok',
      'EIO',
      'EIO',
    ]);
    expect(
      await run(await stack(rule('pwritev', { iotype: 'block-status' }), false), 'write', 'map'),
    ).toEqual(['ok', 'EIO']);
  });

  it('errno 0 matches but injects nothing', async () => {
    expect(await run(await stack(rule('read_aio', { errno: 0 })), 'read')).toEqual(['ok']);
  });

  it('set-state moves the state that later rules wait for', async () => {
    const node = await stack({
      'set-state': [{ event: 'read_aio', new_state: 2 }],
      'inject-error': [{ event: 'write_aio', state: 2 }],
    });
    expect(await run(node, 'write', 'read', 'write')).toEqual(['ok', 'ok', 'EIO']);
  });

  it('without immediately, the error comes after one event-loop turn', async () => {
    const order = async (immediately: boolean): Promise<string[]> => {
      const node = await stack(rule('read_aio', { immediately }));
      const seen: string[] = [];
      setTimeout(() => seen.push('timer'), 0);
      await node.read(0, new Uint8Array(512)).catch(() => seen.push('error'));
      await new Promise((resolve) => setTimeout(resolve, 5));
      return seen;
    };
    expect(await order(true)).toEqual(['error', 'timer']);
    expect(await order(false)).toEqual(['timer', 'error']);
  });
});

describe('blkdebug: config file (QEMU -readconfig syntax)', () => {
  const cfg = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };

  it('reads [inject-error] sections, after which options add more', async () => {
    const config = cfg(
      'good.cfg',
      '# comment\n\n[inject-error]\nevent = "read_aio"\nerrno = "28"\nsector = "2"\n\n[inject-error "w"]\n  event = "write_aio"\n',
    );
    const node = await stack({ config });
    expect(await run(node, 'read 0 512', 'read 1024 512', 'write')).toEqual(['ok', 'ENOSPC', 'EIO']);
  });

  it('reads [set-state] sections and numbers in C syntax', async () => {
    const config = cfg(
      'state.cfg',
      '[set-state]\nevent = "read_aio"\nnew_state = "2"\n\n[inject-error]\nevent = "write_aio"\nstate = "2"\nerrno = "0x1c"\n',
    );
    expect(await run(await stack({ config }), 'write', 'read', 'write')).toEqual(['ok', 'ok', 'ENOSPC']);
  });

  // Texts from qemu-io -f raw blkdebug:FILE:img.
  it.each([
    ['garbage\n', 'no group defined'],
    ['[bogus]\nevent = "read_aio"\n', "There is no option group 'bogus'"],
    ['[inject-error]\nevent = "read_aio"\nfoo = "1"\n', "Invalid parameter 'foo'"],
    ['[inject-error]\nevent = "bogus"\n', 'invalid parameter value: bogus'],
    ['[inject-error]\nevent = "read_aio"\nerrno = "abc"\n', "Parameter 'errno' expects a number"],
    ['[inject-error]\nevent = "read_aio"\nonce = "maybe"\n', "Parameter 'once' expects 'on' or 'off'"],
    ['[inject-error]\nerrno = "5"\n', 'Missing event name for rule'],
    ['[inject-error]\nevent = "read_aio"\n   \n', 'parse error'],
    ['[inject-error]\nevent = "read_aio"\niotype = "bogus"\n', 'invalid parameter value: bogus'],
  ])('refuses %j with QEMU text', async (text, message) => {
    await expect(stack({ config: cfg('bad.cfg', text) })).rejects.toThrow(message);
  });

  it('a missing file', async () => {
    await expect(stack({ config: '/nonexistent.cfg' })).rejects.toThrow(
      'Could not read blkdebug config file: No such file or directory',
    );
  });
});

describe('blkdebug: options and legacy filename', () => {
  it('QMP validation of the event enum (QMP blockdev-add text)', async () => {
    await expect(stack(rule('bogus'))).rejects.toThrow("Parameter 'event' does not accept value 'bogus'");
  });

  it('align must be a power of two; it becomes the request alignment', async () => {
    await expect(stack({ align: 3 })).rejects.toThrow('Cannot meet constraints with align 3');
    const node = await stack({ align: 4096 }, false);
    expect(node.ops.requestAlignment).toBe(4096);
    expect((await stack({ align: 0 }, false)).ops.requestAlignment).toBe(1);
  });

  it('parses blkdebug:[config]:image', () => {
    expect(blkdebugDriver.parseFilename('blkdebug:rules.cfg:/tmp/a.img')).toEqual({
      config: 'rules.cfg',
      'x-image': '/tmp/a.img',
    });
    expect(blkdebugDriver.parseFilename('blkdebug::/tmp/a:b.img')).toEqual({ 'x-image': '/tmp/a:b.img' });
    expect(() => blkdebugDriver.parseFilename('blkdebug:img')).toThrow(
      'blkdebug requires both config file and image path',
    );
  });

  it('passes data through when no rule fires', async () => {
    const node = await stack({}, false);
    await node.write(100, new Uint8Array([4, 5, 6]));
    const buf = new Uint8Array(3);
    await node.read(100, buf);
    expect([...buf]).toEqual([4, 5, 6]);
  });
});
