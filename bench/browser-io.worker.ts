/**
 * The browser half of bench/browser-io.ts: a dedicated module worker (where OPFS sync handles
 * exist) that makes each image with blockdev-create, then times I/O through a BlockBackend, as
 * the guest's drive would do it, and posts the numbers back as plain data.
 *
 * The storage table is the only place a protocol is named: a row is how to address its image
 * `id` and how to remove it afterwards. raw and qcow2 (64 KiB clusters) run over every row.
 */
import { BlockBackend } from '../src/block/backend.ts';
import { deleteIdbImage } from '../src/drivers/protocol/idb.ts';
import { deleteMemoryStore } from '../src/drivers/protocol/memory.ts';
import { deleteOpfsImage } from '../src/drivers/protocol/opfs.ts';
import { findDriver } from '../src/drivers/index.ts';
import { BlockGraph } from '../src/graph/graph.ts';
import { blockdevCreate } from '../src/qmp/commands/create.ts';

interface StorageRow {
  readonly name: string;
  /** blockdev-add options of the protocol node holding image `id`. */
  protocol(id: string): Record<string, unknown>;
  remove(id: string): Promise<void>;
}

const STORAGE: readonly StorageRow[] = [
  {
    name: 'memory',
    protocol: (id) => ({ driver: 'memory', store: id }),
    remove: async (id) => void deleteMemoryStore(id),
  },
  {
    name: 'opfs',
    protocol: (id) => ({ driver: 'opfs', filename: `bench/${id}` }),
    remove: (id) => deleteOpfsImage(`bench/${id}`),
  },
  {
    name: 'idb',
    protocol: (id) => ({ driver: 'idb', database: 'blockgraph-bench', name: id }),
    remove: (id) => deleteIdbImage('blockgraph-bench', id),
  },
];

export const FORMATS = ['raw', 'qcow2'] as const;

/** What the Node side asks for. */
export interface BenchRequest {
  readonly storage: readonly string[];
  readonly sizeMiB: number;
  /** Random 4 KiB requests per measurement. */
  readonly randomOps: number;
  readonly depths: readonly number[];
}

/** One measurement: `op` of `pattern` at queue depth `depth`. */
export interface Measurement {
  readonly pattern: 'seq' | 'rand';
  readonly op: 'read' | 'write';
  readonly depth: number;
  readonly bytes: number;
  readonly requests: number;
  readonly seconds: number;
}

export interface BenchResult {
  readonly storage: string;
  readonly format: string;
  readonly error?: string;
  readonly measurements: readonly Measurement[];
}

const MiB = 1 << 20;
const SMALL = 4096;

const graph = new BlockGraph();
const qmp = { graph, session: { negotiate: () => {} }, quit: () => {} };

function create(options: Record<string, unknown>): Promise<unknown> {
  return Promise.resolve(blockdevCreate.run(qmp, { 'job-id': 'bench', options }));
}

/** Makes image `id` in `row` as blockdev-create would; returns its blockdev-add options. */
async function makeImage(row: StorageRow, format: string, id: string, size: number) {
  const file = row.protocol(id);
  const fileSize = format === 'raw' ? size : 0;
  // Storage without blockdev-create (memory) is sized by its `size` option on first open.
  if (findDriver(file.driver as string)?.protocolCreator) await create({ ...file, size: fileSize });
  else await graph.release(await graph.open({ ...file, size: fileSize }));
  if (format === 'qcow2') await create({ driver: 'qcow2', file, size, 'cluster-size': 65536 });
  return { driver: format, file };
}

/** xorshift32: the same random 4 KiB offsets for every image. */
function randomOffsets(count: number, size: number): number[] {
  let x = 2463534242;
  return Array.from({ length: count }, () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return ((x >>> 0) % (size / SMALL)) * SMALL;
  });
}

/**
 * Issues `op` at each of `offsets` with `depth` requests in flight (each lane takes the next
 * offset when its request completes); writes end with a flush, inside the timing.
 */
async function timed(
  blk: BlockBackend,
  op: 'read' | 'write',
  offsets: readonly number[],
  len: number,
  depth: number,
) {
  let next = 0;
  const lane = async () => {
    const buf = new Uint8Array(len).fill(0xa5);
    while (next < offsets.length) {
      const at = offsets[next++]!;
      await (op === 'read' ? blk.read(at, buf) : blk.write(at, buf));
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: depth }, lane));
  if (op === 'write') await blk.flush();
  return (performance.now() - start) / 1000;
}

async function measure(blk: BlockBackend, req: BenchRequest): Promise<Measurement[]> {
  const size = blk.length();
  const seq = Array.from({ length: size / MiB }, (_, i) => i * MiB);
  const rand = randomOffsets(req.randomOps, size);
  // Fill first (untimed): qcow2 allocates here, so the timed writes overwrite allocated clusters.
  await timed(blk, 'write', seq, MiB, 1);
  const out: Measurement[] = [];
  for (const [pattern, offsets, len] of [
    ['seq', seq, MiB],
    ['rand', rand, SMALL],
  ] as const) {
    for (const op of ['read', 'write'] as const) {
      for (const depth of req.depths) {
        const seconds = await timed(blk, op, offsets, len, depth);
        out.push({ pattern, op, depth, bytes: offsets.length * len, requests: offsets.length, seconds });
      }
    }
  }
  return out;
}

async function benchOne(row: StorageRow, format: string, req: BenchRequest): Promise<BenchResult> {
  const id = `${format}-${Date.now()}`;
  try {
    const options = await makeImage(row, format, id, req.sizeMiB * MiB);
    const blk = new BlockBackend(graph, '');
    blk.insert(await graph.open(options));
    try {
      return { storage: row.name, format, measurements: await measure(blk, req) };
    } finally {
      await blk.close();
    }
  } catch (err) {
    return { storage: row.name, format, error: String(err), measurements: [] };
  } finally {
    await row.remove(id).catch(() => {});
  }
}

onmessage = async (e: MessageEvent<BenchRequest>) => {
  const req = e.data;
  const results: BenchResult[] = [];
  for (const row of STORAGE.filter((r) => req.storage.includes(r.name))) {
    for (const format of FORMATS) results.push(await benchOne(row, format, req));
  }
  postMessage(results);
};
