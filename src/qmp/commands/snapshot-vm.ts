/**
 * snapshot-save, snapshot-load and snapshot-delete (qapi/migration.json; migration/savevm.c
 * qmp_snapshot_save and its kin). Jobs of the commands' names, left for job-dismiss
 * (one-shot-job.ts): a failure is the concluded job's `error`.
 * The work is frontends/savevm.ts's; `devices` and `vmstate` are node-names, as in QEMU.
 */
import { deleteVm, loadVm, saveVm } from '../../frontends/savevm.ts';
import { startOneShotJob } from './one-shot-job.ts';
import type { QmpCommand } from './types.ts';
import { NOTHING } from './types.ts';

const JOB = {
  'job-id': { type: 'str', help: 'the job identifier' },
  tag: { type: 'str', help: 'the snapshot name' },
} as const;
const VMSTATE = { vmstate: { type: 'str', help: 'node-name of the device holding the VM state' } } as const;
const DEVICES = {
  devices: { type: { list: 'str' }, help: 'node-names of the devices to snapshot' },
} as const;

export const snapshotSave: QmpCommand = {
  name: 'snapshot-save',
  help: 'save the machine state and an internal snapshot of each device (a job)',
  args: { ...JOB, ...VMSTATE, ...DEVICES },
  async run(ctx, args) {
    const { tag, vmstate, devices } = args as { tag: string; vmstate: string; devices: string[] };
    startOneShotJob(ctx.graph, args['job-id'] as string, 'snapshot-save', () =>
      saveVm(ctx.graph, { name: tag, overwrite: false, vmstate, devices }),
    );
    return NOTHING;
  },
};

export const snapshotLoad: QmpCommand = {
  name: 'snapshot-load',
  help: 'revert each device to a snapshot and restore the machine state saved with it',
  args: { ...JOB, ...VMSTATE, ...DEVICES },
  async run(ctx, args) {
    const { tag, vmstate, devices } = args as { tag: string; vmstate: string; devices: string[] };
    startOneShotJob(ctx.graph, args['job-id'] as string, 'snapshot-load', () =>
      loadVm(ctx.graph, { name: tag, vmstate, devices }),
    );
    return NOTHING;
  },
};

export const snapshotDelete: QmpCommand = {
  name: 'snapshot-delete',
  help: 'delete a snapshot from each device that has it',
  args: { ...JOB, ...DEVICES },
  async run(ctx, args) {
    const { tag, devices } = args as { tag: string; devices: string[] };
    startOneShotJob(ctx.graph, args['job-id'] as string, 'snapshot-delete', () =>
      deleteVm(ctx.graph, { name: tag, devices }),
    );
    return NOTHING;
  },
};
