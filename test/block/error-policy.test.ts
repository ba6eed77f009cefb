/** rerror/werror policies, driven by blkdebug inject-error rules under raw (which signals read_aio/write_aio). */
import { describe, expect, it } from 'vitest';
import { firstDifference, pattern, rig, settle } from './setup.ts';

const failWrite = (extra: Record<string, unknown> = {}) => ({
  event: 'write_aio',
  iotype: 'write',
  ...extra,
});
const failRead = (extra: Record<string, unknown> = {}) => ({ event: 'read_aio', iotype: 'read', ...extra });

/** Tracks whether a promise has settled, without awaiting it. */
function watch(p: Promise<void>) {
  const w = { settled: false, error: undefined as unknown, promise: p };
  p.then(
    () => (w.settled = true),
    (e) => Object.assign(w, { settled: true, error: e }),
  );
  return w;
}

const names = (events: { event: string }[]) => events.map((e) => e.event);

describe('error policies', () => {
  it('report: the request fails and BLOCK_IO_ERROR says report', async () => {
    const { blk, events, graph } = await rig({ injectError: [failRead()], backend: { device: 'hd0' } });
    await expect(blk.read(0, new Uint8Array(512))).rejects.toMatchObject({ errno: 'EIO' });
    // werror defaults to enospc, so io-status is tracked and `nospace` is present.
    expect(events).toEqual([
      {
        event: 'BLOCK_IO_ERROR',
        data: {
          device: 'd0',
          'node-name': 'r0',
          operation: 'read',
          action: 'report',
          nospace: false,
          reason: 'Input/output error',
        },
      },
    ]);
    expect(Object.keys(events[0]!.data)).toEqual([
      'device',
      'node-name',
      'operation',
      'action',
      'nospace',
      'reason',
    ]);
    expect(blk.stats()).toMatchObject({ failed_rd_operations: 1, rd_operations: 0 });
    expect(graph.runState.query()).toEqual({ running: true, singlestep: false, status: 'running' });
    expect(blk.ioStatus()).toBe('ok');
  });

  it('ignore: the guest sees success, BLOCK_IO_ERROR says ignore', async () => {
    const { blk, events } = await rig({
      injectError: [failWrite()],
      backend: { device: 'hd0', werror: 'ignore' },
    });
    await blk.write(0, pattern(512, 1));
    // Neither policy can stop, so io-status is not tracked and the event has no `nospace`.
    expect(events.map((e) => e.data)).toEqual([
      { device: 'd0', 'node-name': 'r0', operation: 'write', action: 'ignore', reason: 'Input/output error' },
    ]);
    expect(blk.stats()).toMatchObject({ wr_operations: 1, failed_wr_operations: 0 });
    // The data never reached the image.
    const got = new Uint8Array(512);
    await blk.read(0, got);
    expect(got.every((b) => b === 0)).toBe(true);
  });

  it('stop: the request waits, the machine stops with io-error, cont retries it', async () => {
    const { blk, events, graph } = await rig({
      injectError: [failWrite({ once: true })],
      backend: { device: 'hd0', werror: 'stop' },
    });
    const w = watch(blk.write(4096, pattern(512, 2)));
    await settle();
    expect(w.settled).toBe(false);
    expect(names(events)).toEqual(['BLOCK_IO_ERROR', 'STOP']);
    expect(events[0]!.data).toMatchObject({ action: 'stop', operation: 'write', nospace: false });
    expect(graph.runState.query()).toEqual({ running: false, singlestep: false, status: 'io-error' });
    expect(blk.ioStatus()).toBe('failed');
    expect(blk.queryBlock()['io-status']).toBe('failed');
    // A parked request does not hold up drain (block_resize while stopped must work).
    await blk.drain();

    await graph.runState.cont();
    await w.promise;
    expect(names(events)).toEqual(['BLOCK_IO_ERROR', 'STOP', 'RESUME']);
    expect(graph.runState.status).toBe('running');
    expect(blk.ioStatus()).toBe('ok');
    const got = new Uint8Array(512);
    await blk.read(4096, got);
    expect(firstDifference(got, pattern(512, 2))).toBe(-1);
    // Only the successful attempt is accounted.
    expect(blk.stats()).toMatchObject({ wr_operations: 1, failed_wr_operations: 0 });
  });

  it('stop: a retry that fails again stops again', async () => {
    const { blk, events, graph } = await rig({
      injectError: [failWrite({ once: true }), failWrite({ once: true })],
      backend: { device: 'hd0', werror: 'stop' },
    });
    const w = watch(blk.write(0, pattern(512, 3)));
    await settle();
    await graph.runState.cont();
    await settle();
    expect(w.settled).toBe(false);
    expect(names(events)).toEqual(['BLOCK_IO_ERROR', 'STOP', 'RESUME', 'BLOCK_IO_ERROR', 'STOP']);
    expect(graph.runState.status).toBe('io-error');
    await graph.runState.cont();
    await w.promise;
    expect(graph.runState.running).toBe(true);
  });

  it('rerror=stop parks a read and retries it', async () => {
    const { blk, events, graph } = await rig({
      injectError: [failRead({ once: true })],
      backend: { device: 'hd0', rerror: 'stop', werror: 'report' },
    });
    await blk.write(0, pattern(1024, 4));
    const got = new Uint8Array(1024);
    const r = watch(blk.read(0, got));
    await settle();
    expect(r.settled).toBe(false);
    expect(events[0]!.data).toMatchObject({ operation: 'read', action: 'stop' });
    await graph.runState.cont();
    await r.promise;
    expect(firstDifference(got, pattern(1024, 4))).toBe(-1);
  });

  it('enospc: stops on ENOSPC with io-status nospace, reports any other error', async () => {
    const { blk, events, graph } = await rig({
      injectError: [failWrite({ once: true, errno: 28 })],
      backend: { device: 'hd0', werror: 'enospc' },
    });
    const w = watch(blk.write(0, new Uint8Array(512)));
    await settle();
    expect(w.settled).toBe(false);
    expect(events[0]!.data).toMatchObject({
      action: 'stop',
      nospace: true,
      reason: 'No space left on device',
    });
    expect(blk.ioStatus()).toBe('nospace');
    await graph.runState.cont();
    await w.promise;

    const eio = await rig({
      injectError: [failWrite({ errno: 5 })],
      backend: { device: 'hd0', werror: 'enospc' },
    });
    await expect(eio.blk.write(0, new Uint8Array(512))).rejects.toMatchObject({ errno: 'EIO' });
    expect(eio.events.map((e) => e.data.action)).toEqual(['report']);
    expect(eio.graph.runState.running).toBe(true);
  });

  it('treats a failed flush as a write error', async () => {
    const { blk, events } = await rig({
      injectError: [{ event: 'flush_to_os', iotype: 'flush' }],
      backend: { device: 'hd0', werror: 'report' },
    });
    await expect(blk.flush()).rejects.toMatchObject({ errno: 'EIO' });
    expect(events[0]!.data).toMatchObject({ operation: 'write', action: 'report' });
    expect(blk.stats().failed_flush_operations).toBe(1);
  });

  it('applies no policy without a device: the error is reported as is, no event', async () => {
    const { blk, events, graph } = await rig({ injectError: [failWrite()], backend: { werror: 'stop' } });
    await expect(blk.write(0, new Uint8Array(512))).rejects.toMatchObject({ errno: 'EIO' });
    expect(events).toEqual([]);
    expect(graph.runState.running).toBe(true);
    expect(blk.queryBlock()).not.toHaveProperty('io-status');
    // A frontend attaching later (-drive ... -device ide-hd,drive=d0) turns the policy on.
    blk.attachDevice('hd0');
    void blk.write(0, new Uint8Array(512));
    await settle();
    expect(names(events)).toEqual(['BLOCK_IO_ERROR', 'STOP']);
    expect(blk.queryBlock()).toMatchObject({ qdev: 'hd0', 'io-status': 'failed' });
  });

  it('keeps a paused machine paused (no second STOP) and retries on cont', async () => {
    const { blk, events, graph } = await rig({
      injectError: [failWrite({ once: true })],
      backend: { device: 'hd0', werror: 'stop' },
    });
    graph.runState.stop();
    const w = watch(blk.write(0, new Uint8Array(512)));
    await settle();
    expect(names(events)).toEqual(['STOP', 'BLOCK_IO_ERROR']);
    expect(graph.runState.status).toBe('paused');
    await graph.runState.cont();
    await w.promise;
    expect(names(events)).toEqual(['STOP', 'BLOCK_IO_ERROR', 'RESUME']);
  });

  it('keeps later overlapping requests behind a parked write', async () => {
    const { blk, graph } = await rig({
      injectError: [failWrite({ once: true })],
      backend: { device: 'hd0', werror: 'stop' },
    });
    const w = watch(blk.write(0, pattern(512, 5)));
    const got = new Uint8Array(512);
    const r = watch(blk.read(0, got));
    await settle();
    expect([w.settled, r.settled]).toEqual([false, false]);
    // Neither the parked write nor the read stuck behind it holds up drain.
    await blk.drain();
    await graph.runState.cont();
    await r.promise;
    expect(firstDifference(got, pattern(512, 5))).toBe(-1);
  });

  it('fails a parked request with ENOMEDIUM when the medium was removed meanwhile', async () => {
    const { blk, graph } = await rig({
      injectError: [failWrite({ once: true })],
      backend: { device: 'hd0', werror: 'stop' },
    });
    const w = watch(blk.write(0, new Uint8Array(512)));
    await settle();
    await blk.remove();
    await graph.runState.cont();
    await expect(w.promise).rejects.toMatchObject({ errno: 'ENOMEDIUM' });
  });
});
