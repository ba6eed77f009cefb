/**
 * The idb driver where Node can check it: option handling and the refusals that come before any
 * storage is touched. Its storage behaviour runs in Chromium (e2e/idb.spec.ts, the conformance
 * rows, e2e/persistence-failures.spec.ts): Node has no IndexedDB.
 */
import { describe, expect, it } from 'vitest';
import { BlockGraph } from '../../../src/graph/graph.ts';
import { runJobCommand } from '../../../src/jobs/job-command.ts';
import { localExecute } from '../../../src/qmp/commands/local.ts';

function create(options: Record<string, unknown>) {
  const execute = localExecute(new BlockGraph());
  return runJobCommand(execute, 'blockdev-create', { 'job-id': 'j', options: { driver: 'idb', ...options } });
}

describe('idb', () => {
  it('refuses a chunk size that is not a power of two from 4k to 16M', async () => {
    const text = 'Chunk size must be a power of two between 4096 and 16384k';
    for (const size of [3000, 2048, 32 << 20]) {
      await expect(create({ name: 'x', size: 0, 'chunk-size': size })).rejects.toThrow(text);
    }
  });

  it('takes chunk-size only at creation, and requires a name', async () => {
    const graph = new BlockGraph();
    await expect(
      graph.blockdevAdd({ driver: 'idb', name: 'x', 'chunk-size': 4096, 'node-name': 'n' }),
    ).rejects.toThrow("Parameter 'chunk-size' is unexpected");
    await expect(graph.blockdevAdd({ driver: 'idb', 'node-name': 'n' })).rejects.toThrow(
      "Parameter 'name' is missing",
    );
  });

  it('says where IndexedDB is missing, naming the image', async () => {
    await expect(
      new BlockGraph().blockdevAdd({ driver: 'idb', name: 'disk', 'node-name': 'n' }),
    ).rejects.toThrow("Could not open 'blockgraph/disk': IndexedDB is not available here");
    await expect(create({ database: 'db', name: 'disk', size: 0 })).rejects.toThrow(
      "Could not create 'db/disk': IndexedDB is not available here",
    );
  });
});
