/** The installed entry point: `node bin/blockgraph.js <command>` dispatches and sets the exit code. */
import { describe, expect, it } from 'vitest';
import { runTool } from './helpers.ts';

const bin = new URL('../../bin/blockgraph.js', import.meta.url).pathname;

describe('bin/blockgraph.js', () => {
  it('runs io on a null-co image and exits 0', () => {
    const r = runTool('node', [
      bin,
      'io',
      '-c',
      'read -P 0 0 4k',
      'json:{"driver":"null-co","read-zeroes":true}',
    ]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^read 4096\/4096 bytes at offset 0\n4 KiB, 1 ops; /);
    expect(r.status).toBe(0);
  });

  it('exits 1 with a pattern mismatch, and on an unknown command like qemu-img', () => {
    const r = runTool('node', [
      bin,
      'io',
      '-c',
      'read -q -P 1 0 1',
      'json:{"driver":"null-co","read-zeroes":true}',
    ]);
    expect(r).toMatchObject({ status: 1, stdout: 'Pattern verification failed at offset 0, 1 bytes\n' });
    const u = runTool('node', [bin, 'bogus']);
    expect(u).toMatchObject({
      status: 1,
      stderr: "blockgraph: Command not found: bogus\nTry 'blockgraph --help' for more information\n",
    });
  });
});
