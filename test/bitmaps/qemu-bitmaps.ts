/**
 * What QEMU itself sees of an image's persistent bitmaps: qemu-system-x86_64's QMP opens the
 * image read-only and answers query-named-block-nodes (`dirty-bitmaps`) and
 * x-debug-block-dirty-bitmap-sha256 (the SHA-256 of the bitmap's serialized bits).
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import type { BdrvDirtyBitmap } from '../../src/bitmaps/dirty-bitmap.ts';

export interface QemuBitmaps {
  /** BlockDirtyInfo by name. */
  info: Map<string, Record<string, unknown>>;
  /** SHA-256 of each named bitmap's bits. */
  sha256: Map<string, string>;
}

export function qemuBitmaps(path: string, names: readonly string[]): QemuBitmaps {
  const lines = [
    { execute: 'qmp_capabilities' },
    {
      execute: 'blockdev-add',
      arguments: {
        driver: 'qcow2',
        'node-name': 'q',
        'read-only': true,
        file: { driver: 'file', filename: path },
      },
    },
    { execute: 'query-named-block-nodes', arguments: { flat: true } },
    ...names.map((name) => ({
      execute: 'x-debug-block-dirty-bitmap-sha256',
      arguments: { node: 'q', name },
    })),
    { execute: 'quit' },
  ];
  const r = spawnSync(
    'qemu-system-x86_64',
    ['-M', 'none', '-nodefaults', '-display', 'none', '-qmp', 'stdio'],
    {
      input: lines.map((l) => JSON.stringify(l)).join('\n') + '\n',
      encoding: 'utf8',
      timeout: 20000,
    },
  );
  const replies = r.stdout
    .split('\n')
    .filter((l) => l.startsWith('{"return"') || l.startsWith('{"error"'))
    .map((l) => JSON.parse(l) as { return?: unknown; error?: unknown });
  const nodes = replies[2]!.return as { 'node-name': string; 'dirty-bitmaps'?: Record<string, unknown>[] }[];
  const bitmaps = nodes.find((n) => n['node-name'] === 'q')!['dirty-bitmaps'] ?? [];
  const info = new Map(bitmaps.map((b) => [b.name as string, b]));
  const sha256 = new Map(
    names.map((name, i) => [name, (replies[3 + i]!.return as { sha256: string }).sha256]),
  );
  return { info, sha256 };
}

/** The same digest over our bitmap: QEMU hashes its bits padded to whole 64-bit words. */
export function sha256Of(bitmap: BdrvDirtyBitmap): string {
  const bytes = Math.ceil(bitmap.serializedBytes() / 8) * 8;
  return createHash('sha256').update(bitmap.serialize(0, bytes)).digest('hex');
}
