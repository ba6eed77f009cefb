/**
 * snapshot-save, snapshot-load and snapshot-delete (qapi/migration.json; migration/savevm.c
 * qmp_snapshot_save and its kin). QEMU 7.2 runs them as jobs; blockgraph runs them synchronously
 * (sync-job.ts), so a failure is the command's error rather than the concluded job's `error`.
 * The work is frontends/savevm.ts's; `devices` and `vmstate` are node-names, as in QEMU.
 */
import { deleteVm, loadVm, saveVm } from '../../frontends/savevm.ts';
import { runSyncJob } from './sync-job.ts';
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
  help: 'save the machine state and an internal snapshot of each device (runs synchronously)',
  args: { ...JOB, ...VMSTATE, ...DEVICES },
  async run(ctx, args) {
    const { tag, vmstate, devices } = args as { tag: string; vmstate: string; devices: string[] };
    await runSyncJob(
      ctx.graph,
      args['job-id'] as string,
      () => saveVm(ctx.graph, { name: tag, overwrite: false, vmstate, devices }),
      'snapshot-save',
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
    await runSyncJob(
      ctx.graph,
      args['job-id'] as string,
      () => loadVm(ctx.graph, { name: tag, vmstate, devices }),
      'snapshot-load',
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
    await runSyncJob(
      ctx.graph,
      args['job-id'] as string,
      () => deleteVm(ctx.graph, { name: tag, devices }),
      'snapshot-delete',
    );
    return NOTHING;
  },
};
