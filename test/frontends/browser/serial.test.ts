import { describe, expect, it, vi } from 'vitest';
import { SerialConsole } from '../../../src/frontends/browser/serial.ts';

function feed(serial: SerialConsole, text: string): void {
  for (const b of new TextEncoder().encode(text)) serial.byte(b);
}

describe('SerialConsole', () => {
  it('decodes UTF-8 split across bytes and ends lines at LF, dropping a CR before it', () => {
    const serial = new SerialConsole();
    const seen: string[] = [];
    serial.onLine((l) => seen.push(l));
    feed(serial, 'grüße\r\nzwei\nhalb');
    expect(serial.lines).toEqual(['grüße', 'zwei']);
    expect(seen).toEqual(['grüße', 'zwei']);
    expect(serial.text).toBe('grüße\nzwei\nhalb');
  });

  it('waitFor answers from lines already seen and from lines still to come', async () => {
    const serial = new SerialConsole();
    feed(serial, 'BLOCKGRAPH-CHECK disk OK /dev/sda2\n');
    await expect(serial.waitFor(/disk OK/, 10)).resolves.toBe('BLOCKGRAPH-CHECK disk OK /dev/sda2');
    const done = serial.waitFor(/^BLOCKGRAPH-GUEST-DONE /, 1000);
    feed(serial, 'BLOCKGRAPH-GUEST-DONE pass');
    feed(serial, '=5 fail=0\n');
    await expect(done).resolves.toBe('BLOCKGRAPH-GUEST-DONE pass=5 fail=0');
  });

  it('waitFor times out with the last output in its message, and stops listening', async () => {
    vi.useFakeTimers();
    try {
      const serial = new SerialConsole();
      feed(serial, 'SYSLINUX 6.04\nKernel panic\n');
      const wait = serial.waitFor(/DONE/, 500);
      vi.advanceTimersByTime(500);
      await expect(wait).rejects.toThrow(/within 500 ms; last output:\nSYSLINUX 6.04\nKernel panic/);
      // A matching line after the timeout must not resolve anything or throw.
      feed(serial, 'DONE\n');
    } finally {
      vi.useRealTimers();
    }
  });
});
