import { describe, expect, it } from 'vitest';
import { RunState } from '../../src/block/runstate.ts';

function machine(initial?: 'running' | 'prelaunch') {
  const events: string[] = [];
  const changes: [boolean, string][] = [];
  const rs = new RunState((event) => events.push(event), initial);
  rs.listen((running, status) => changes.push([running, status]));
  return { rs, events, changes };
}

describe('RunState', () => {
  it('answers query-status like QEMU 7.2 and emits STOP/RESUME only on transitions', async () => {
    const { rs, events, changes } = machine();
    expect(rs.query()).toEqual({ running: true, singlestep: false, status: 'running' });
    await rs.cont(); // cont on a running machine: no event
    rs.stop();
    expect(rs.query()).toEqual({ running: false, singlestep: false, status: 'paused' });
    rs.stop('io-error'); // already stopped: nothing changes
    expect(rs.status).toBe('paused');
    await rs.cont();
    expect(events).toEqual(['STOP', 'RESUME']);
    expect(changes).toEqual([
      [false, 'paused'],
      [true, 'running'],
    ]);
  });

  it('starts in prelaunch with -S and runs on cont', async () => {
    const { rs, events } = machine('prelaunch');
    expect(rs.query()).toEqual({ running: false, singlestep: false, status: 'prelaunch' });
    await rs.cont();
    expect(rs.status).toBe('running');
    expect(events).toEqual(['RESUME']);
  });

  it('stops listening when asked', () => {
    const rs = new RunState(() => {});
    let calls = 0;
    const off = rs.listen(() => calls++);
    rs.stop();
    off();
    void rs.cont();
    expect(calls).toBe(1);
  });
});
