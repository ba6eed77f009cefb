/**
 * x-blockdev-amend (qapi/block-core.json; block/amend.c qmp_x_blockdev_amend): a job of type
 * `amend`, left for job-dismiss (one-shot-job.ts). BlockdevAmendOptions is a union on
 * `driver`: only qcow2 (and luks, which blockgraph has not) can amend, and qcow2's only member
 * is `encrypt` — compat, lazy refcounts and the like are `qemu-img amend` options, not QMP ones.
 */
import { genericError } from '../../block/errors.ts';
import { isPlainObject } from '../../config/keyval.ts';
import type { OptionsSchema } from '../../config/schema.ts';
import { validateOptions } from '../../config/validate.ts';
import { QCOW2_AMEND_OPTIONS, qcow2Amend } from '../../drivers/format/qcow2/amend-qmp.ts';
import { findDriver } from '../../drivers/index.ts';
import { checkArgs } from '../args.ts';
import { lookupNode } from './lookup.ts';
import { startOneShotJob } from './one-shot-job.ts';
import type { QmpCommand } from './types.ts';
import { NOTHING } from './types.ts';

/** Drivers with bdrv_co_amend: their members of BlockdevAmendOptions, and the amendment. */
const AMENDERS: Readonly<
  Record<string, { options: (raw: Record<string, unknown>) => OptionsSchema; amend: typeof qcow2Amend }>
> = {
  qcow2: { options: QCOW2_AMEND_OPTIONS, amend: qcow2Amend },
};

export const xBlockdevAmend: QmpCommand = {
  name: 'x-blockdev-amend',
  help: "amend a format node's options (qcow2: encryption only, as in QEMU 7.2; a job of type amend)",
  args: 'boxed',
  async run(ctx, args) {
    // QAPI visits the members in schema order, then reports leftovers.
    checkArgs({ 'job-id': STR, 'node-name': STR }, pick(args, ['job-id', 'node-name']));
    if (args.options === undefined) throw genericError("Parameter 'options' is missing");
    if (!isPlainObject(args.options))
      throw genericError("Invalid parameter type for 'options', expected: object");
    const options = validateAmendOptions(args.options);
    checkArgs({ force: { type: 'bool', optional: true, help: '' } }, pick(args, ['force']));
    const extra = Object.keys(args).find((k) => !['job-id', 'node-name', 'options', 'force'].includes(k));
    if (extra !== undefined) throw genericError(`Parameter '${extra}' is unexpected`);
    const node = lookupNode(ctx.graph, undefined, args['node-name'] as string);
    if (node.driver.name !== options.driver) {
      throw genericError("x-blockdev-amend doesn't support changing the block driver");
    }
    const amender = AMENDERS[node.driver.name];
    if (!amender) throw genericError('Driver does not support x-blockdev-amend');
    startOneShotJob(ctx.graph, args['job-id'] as string, 'amend', () =>
      amender.amend(node, options, (args.force as boolean | undefined) ?? false),
    );
    return NOTHING;
  },
};

const STR = { type: 'str', help: '' } as const;

function pick(args: Record<string, unknown>, keys: readonly string[]): Record<string, unknown> {
  return Object.fromEntries(keys.filter((k) => Object.hasOwn(args, k)).map((k) => [k, args[k]]));
}

/** QAPI's visit of BlockdevAmendOptions: the driver, then that driver's branch. */
function validateAmendOptions(options: Record<string, unknown>): Record<string, unknown> {
  const ctx = { source: 'qmp', path: 'options.', driverName: '' } as const;
  const driver = options.driver;
  if (driver === undefined) throw genericError("Parameter 'options.driver' is missing");
  if (typeof driver !== 'string')
    throw genericError("Invalid parameter type for 'options.driver', expected: string");
  if (!findDriver(driver)) throw genericError(`Parameter 'driver' does not accept value '${driver}'`);
  const { driver: _, ...members } = options;
  const branch = AMENDERS[driver]?.options(members) ?? {};
  return { driver, ...validateOptions(branch, members, ctx) };
}
