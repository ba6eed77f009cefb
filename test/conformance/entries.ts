/**
 * Image makers for the Node-only conformance rows: temp files. Node only; the rows that run
 * anywhere are in entries-portable.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestImage } from './harness.ts';

let serial = 0;

/** A directory for temp images, removed by the returned cleanup. */
export function tempDir(): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), 'blockgraph-conformance-'));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/** A sparse zero-filled file of `size` bytes in `dir`. */
export async function fileImage(dir: string, size: number): Promise<TestImage & { path: string }> {
  const path = join(dir, `img-${serial++}.raw`);
  const fh = await open(path, 'wx');
  await fh.truncate(size);
  await fh.close();
  return { path, options: { driver: 'file', filename: path }, destroy: () => rm(path, { force: true }) };
}
