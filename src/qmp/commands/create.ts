/**
 * blockdev-create (qapi/block-core.json; block/create.c qmp_blockdev_create): a job of type
 * `create` named by the required `job-id`, left for job-dismiss (one-shot-job.ts).
 * Drivers: every protocol with a ProtocolCreator (`file`: filename, size, preallocation) and every format driver
 * with a creator whose `file` (and `data-file`) are node-names or inline BlockdevOptions; `raw`
 * is refused as in QEMU, which has no raw blockdev-create.
 */
import type { CreateContext, ImageCreator, ProtocolCreator } from '../../block/driver.ts';
import { genericError } from '../../block/errors.ts';
import type { BlockNode } from '../../block/node.ts';
import type { OptionsSchema } from '../../config/schema.ts';
import { validateOptions } from '../../config/validate.ts';
import { rawCreator } from '../../drivers/format/raw-create.ts';
import { findDriver } from '../../drivers/index.ts';
import type { BlockGraph } from '../../graph/graph.ts';
import { startOneShotJob } from './one-shot-job.ts';
import type { QmpCommand } from './types.ts';
import { NOTHING } from './types.ts';

export const blockdevCreate: QmpCommand = {
  name: 'blockdev-create',
  help: 'create an image (a job of type create, concluded jobs wait for job-dismiss)',
  args: 'boxed',
  async run(ctx, args) {
    const jobId = args['job-id'];
    if (jobId === undefined) throw genericError("Parameter 'job-id' is missing");
    if (typeof jobId !== 'string')
      throw genericError("Invalid parameter type for 'job-id', expected: string");
    const options = args.options;
    if (options === undefined) throw genericError("Parameter 'options' is missing");
    if (typeof options !== 'object' || options === null || Array.isArray(options))
      throw genericError("Invalid parameter type for 'options', expected: object");
    const extra = Object.keys(args).find((k) => k !== 'job-id' && k !== 'options');
    if (extra !== undefined) throw genericError(`Parameter '${extra}' is unexpected`);
    const run = await prepare(ctx.graph, options as Record<string, unknown>);
    startOneShotJob(ctx.graph, jobId, 'create', run);
    return NOTHING;
  },
};

/**
 * Checks the options as QAPI does before the job starts (driver, members and their types), and
 * returns the job's body: resolving node references and creating the image.
 */
async function prepare(graph: BlockGraph, options: Record<string, unknown>): Promise<() => Promise<void>> {
  const name = options.driver;
  if (name === undefined) throw genericError("Parameter 'options.driver' is missing");
  const driver = typeof name === 'string' ? findDriver(name) : undefined;
  if (!driver) throw genericError(`Parameter 'driver' does not accept value '${String(name)}'`);
  const { driver: _, ...members } = options;
  const storage = driver.protocolCreator;
  if (storage) {
    const valid = validate({ ...storage.options, ...rawCreator.options }, members, driver.name);
    return () => createProtocol(storage, valid);
  }
  const creator = driver.creator;
  if (!creator || driver.name === 'raw') {
    // qmp_blockdev_create refuses before any job exists (checked with QEMU 7.2).
    validate({}, members, driver.name);
    throw genericError('Driver does not support blockdev-create');
  }
  const valid = validate(creator.options, members, driver.name);
  return () => createFormat(graph, creator, valid);
}

function validate(schema: OptionsSchema, members: Record<string, unknown>, driverName: string) {
  return validateOptions(schema, members, { source: 'qmp', path: 'options.', driverName });
}

/** raw_co_create and its kin: the storage, emptied, then sized as a raw image. */
async function createProtocol(creator: ProtocolCreator, options: Record<string, unknown>): Promise<void> {
  // A graph of its own: the storage is not a node of the user's graph (QEMU opens none either).
  const { BlockGraph } = await import('../../graph/graph.ts');
  const graph = new BlockGraph();
  const node = await graph.open(await creator.create(options));
  try {
    await rawCreator.create(node, options, { children: new Map() });
  } finally {
    await graph.release(node);
  }
}

/**
 * A format's creation: `file` and the other child references are opened (inline options) or
 * looked up (node-names) as bdrv_co_open_blockdev_ref does, and released afterwards.
 */
async function createFormat(
  graph: BlockGraph,
  creator: ImageCreator,
  options: Record<string, unknown>,
): Promise<void> {
  const refs = new Map<string, BlockNode>();
  const opened: BlockNode[] = [];
  try {
    for (const [key, spec] of Object.entries(creator.options)) {
      const ref = options[key];
      if (spec.type !== 'child' || ref === undefined || ref === null) continue;
      const node =
        typeof ref === 'string' ? graph.lookup(ref) : await graph.open(ref as Record<string, unknown>);
      if (typeof ref !== 'string') opened.push(node);
      refs.set(key, node);
    }
    const file = refs.get('file')!;
    refs.delete('file');
    const ctx: CreateContext = { children: refs };
    await creator.create(file, options, ctx);
  } finally {
    for (const node of opened) await graph.release(node);
  }
}
