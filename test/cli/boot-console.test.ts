import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { forwardTerminal, SerialOutput } from '../../src/cli/boot-console.ts';

describe('SerialOutput', () => {
  it('passes every byte through and offers each finished line without its CR', () => {
    let out = '';
    const lines: string[] = [];
    const serial = new SerialOutput(
      (t) => (out += t),
      (l) => lines.push(l),
    );
    // "é" (c3 a9) split across flushes must still decode as one character.
    const bytes = [...Buffer.from('boot\r\nché'), 0x0a, ...Buffer.from('partial')];
    for (const b of bytes.slice(0, 9)) serial.byte(b);
    serial.flush();
    for (const b of bytes.slice(9)) serial.byte(b);
    serial.flush();
    expect(out).toBe('boot\r\nché\npartial');
    expect(lines).toEqual(['boot', 'ché']);
    expect(serial.atLineStart).toBe(false);
  });
});

/** A stand-in for a terminal's stdin. */
class FakeTty extends EventEmitter {
  raw = false;
  paused = true;
  setRawMode(on: boolean) {
    this.raw = on;
    return this;
  }
  resume() {
    this.paused = false;
    return this;
  }
  pause() {
    this.paused = true;
    return this;
  }
}

describe('forwardTerminal', () => {
  it('sends keys in raw mode, Ctrl-A Ctrl-A as one Ctrl-A, quits on Ctrl-A x and restores', () => {
    const tty = new FakeTty();
    const sent: number[] = [];
    let quit = 0;
    const restore = forwardTerminal(
      tty as unknown as NodeJS.ReadStream,
      (b) => sent.push(...b),
      () => quit++,
    );
    expect(tty.raw).toBe(true);
    tty.emit('data', Buffer.from('ls\r'));
    tty.emit('data', Buffer.from([0x01])); // escape split across chunks
    tty.emit('data', Buffer.from([0x01, 0x03]));
    expect(sent).toEqual([...Buffer.from('ls\r'), 0x01, 0x03]);
    expect(quit).toBe(0);
    tty.emit('data', Buffer.from([0x01, 0x78]));
    expect(quit).toBe(1);
    restore();
    expect(tty.raw).toBe(false);
    expect(tty.paused).toBe(true);
    expect(tty.listenerCount('data')).toBe(0);
  });
});
