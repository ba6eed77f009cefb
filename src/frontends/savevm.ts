/**
 * savevm / loadvm / delvm (QEMU 7.2 migration/savevm.c: save_snapshot, load_snapshot,
 * delete_snapshot, over block/snapshot.c's bdrv_all_* device set), independent of the emulator:
 * a machine is anything that can pause, resume, and save and restore its state (v86's
 * save_state / restore_state). The state goes into the VM state area of one device (qcow2:
 * qcow2/vmstate.ts) and an internal snapshot of the same name is taken on every device, all
 * with the same date and VM clock; loadvm reverts every device to its snapshot and restores the
 * state. The checks and texts are QEMU's, in its order, including that a failed loadvm leaves
 * the machine stopped.
 *
 * What QEMU does not check and blockgraph does, before any disk is reverted: the state must
 * belong to the disks it would be combined with (see checkBelongs). A disk whose snapshot of
 * that name was taken at another moment (deleted and made again, by qemu-img or by
 * blockdev-snapshot-internal-sync), a device set that differs from the one saved, a machine of
 * another configuration, or a state that is not blockgraph's (QEMU's own migration stream) is
 * refused, and nothing changes.
 */
import type { SnapshotInfo } from '../block/driver.ts';
import { errnoOf, genericError, ioError, STRERROR } from '../block/errors.ts';
import { BlockNode } from '../block/node.ts';
import type { BlockGraph } from '../graph/graph.ts';
import { snapshotNode } from '../qmp/commands/snapshot.ts';
import { encodeVmState, readVmStateHeader, type VmStateHeader } from './savevm-state.ts';

/** What savevm needs of a machine. */
export interface SavevmMachine {
  /**
   * The emulator and the configuration its state can only be restored into ("v86 memory=64M
   * hda"): loadvm refuses a state saved under another description.
   */
  readonly description: string;
  pause(): Promise<void>;
  resume(): Promise<void>;
  saveState(): Promise<Uint8Array>;
  restoreState(state: Uint8Array): Promise<void>;
  /** Nanoseconds the guest has run (QEMU_CLOCK_VIRTUAL), the snapshots' VM CLOCK; else 0. */
  vmClockNsec?(): number;
}

const machines = new WeakMap<BlockGraph, SavevmMachine>();

/**
 * Makes `machine` the one savevm saves for `graph`'s devices, and has it follow the run state
 * (QMP stop and cont, werror=stop); returns the function that detaches it.
 */
export function attachMachine(graph: BlockGraph, machine: SavevmMachine): () => void {
  machines.set(graph, machine);
  const unlisten = graph.runState.listen((running) => void (running ? machine.resume() : machine.pause()));
  return () => {
    unlisten();
    if (machines.get(graph) === machine) machines.delete(graph);
  };
}

function machineOf(graph: BlockGraph): SavevmMachine {
  const machine = machines.get(graph);
  if (!machine) throw genericError('There is no machine whose state could be saved or loaded');
  return machine;
}

/** One device of a snapshot set (bdrv_all_snapshots_includes_bs). */
interface Device {
  /** bdrv_get_device_or_node_name. */
  readonly name: string;
  readonly node: BlockNode;
  /** Where its snapshots are kept (bdrv_snapshot_fallback); undefined: it cannot take any. */
  readonly target: BlockNode | undefined;
}

/** Which devices savevm and friends act on: `devices` (node-names) or, without, the default set. */
export interface DeviceSelection {
  readonly devices?: readonly string[];
}

export interface SaveOptions extends DeviceSelection {
  /** The tag; without one, "vm-YYYYMMDDhhmmss" (local time). */
  readonly name?: string;
  /** Replace a snapshot of that name (HMP savevm) instead of refusing (snapshot-save). */
  readonly overwrite: boolean;
  /** The node-name of the device to keep the state; default: the first that can. */
  readonly vmstate?: string;
}

export interface LoadOptions extends DeviceSelection {
  readonly name: string;
  readonly vmstate?: string;
}

/** save_snapshot: stops the machine, saves its state and snapshots every device, resumes it. */
export async function saveVm(graph: BlockGraph, opts: SaveOptions): Promise<void> {
  const machine = machineOf(graph);
  const devices = snapshotDevices(graph, opts);
  checkCanSnapshot(devices);
  if (opts.name !== undefined) {
    if (opts.overwrite) await drained(graph, () => deleteOn(devices, opts.name!));
    else if (devices.some((d) => findSnapshot(d, opts.name!))) {
      throw genericError(`Snapshot '${opts.name}' already exists in one or more devices`);
    }
  }
  const vm = vmstateDevice(devices, opts.vmstate);
  const wasRunning = await stop(graph, machine);
  try {
    await drained(graph, async () => {
      const us = Math.round((performance.timeOrigin + performance.now()) * 1000);
      const when = { dateSec: Math.floor(us / 1e6), dateNsec: (us % 1e6) * 1000 };
      const fields = { ...when, vmClockNsec: machine.vmClockNsec?.() ?? 0 };
      const header = { ...fields, machine: machine.description, devices: devices.map((d) => d.name) };
      const state = encodeVmState(header, await machine.saveState());
      try {
        if (!vm.target!.ops.saveVmState) throw ioError('ENOTSUP');
        await vm.target!.ops.saveVmState(0, state);
      } catch (err) {
        throw genericError(`Error while writing VM state: ${STRERROR[errnoOf(err)]}`);
      }
      const name = opts.name ?? autoName(us / 1000);
      await createOn(devices, name, fields, { device: vm, bytes: state.length });
    });
  } finally {
    if (wasRunning) await start(graph, machine);
  }
}

/**
 * load_snapshot: stops the machine, checks that snapshot `name` exists on every device and that
 * its state belongs to them, reverts every device to it and restores the machine's state. The
 * machine runs again only if it ran before and everything succeeded.
 */
export async function loadVm(graph: BlockGraph, opts: LoadOptions): Promise<void> {
  const machine = machineOf(graph);
  const wasRunning = await stop(graph, machine);
  const devices = snapshotDevices(graph, opts);
  checkCanSnapshot(devices);
  const found = devices.map((d) => findSnapshot(d, opts.name));
  if (found.some((sn) => !sn)) {
    throw genericError(`Snapshot '${opts.name}' does not exist in one or more devices`);
  }
  const snapshots = found as SnapshotInfo[];
  const vm = vmstateDevice(devices, opts.vmstate);
  const vmSnapshot = snapshots[devices.indexOf(vm)]!;
  if (vmSnapshot['vm-state-size'] === 0) {
    throw genericError('This is a disk-only snapshot. Revert to it  offline using qemu-img');
  }
  const what = `snapshot '${opts.name}' on '${vm.name}'`;
  const loadVmState = vm.target!.ops.loadVmState?.bind(vm.target!.ops);
  if (!loadVmState) throw genericError(`The VM state of ${what} cannot be read`);
  const read = (pos: number, dst: Uint8Array) => loadVmState(pos, dst, vmSnapshot.id);
  const { header, offset } = await readVmStateHeader(read, vmSnapshot['vm-state-size'], what);
  checkBelongs(header, machine, devices, snapshots, opts.name);
  await drained(graph, async () => {
    for (const [i, d] of devices.entries()) await gotoOn(d, snapshots[i]!, opts.name);
    const state = new Uint8Array(header.stateBytes);
    await loadVmState(offset, state);
    try {
      await machine.restoreState(state);
    } catch (err) {
      throw genericError(`Error while loading VM state: ${(err as Error).message}`);
    }
  });
  if (wasRunning) await start(graph, machine);
}

/** delete_snapshot: snapshot `name` goes from every device that has it. */
export async function deleteVm(
  graph: BlockGraph,
  opts: { readonly name: string } & DeviceSelection,
): Promise<void> {
  const devices = snapshotDevices(graph, opts);
  checkCanSnapshot(devices);
  await drained(graph, () => deleteOn(devices, opts.name));
}

/**
 * hmp_info_snapshots: the snapshots of the first device that can keep a VM state which every
 * device has ("present on all disks", their ids shown as "--": they differ between disks), then
 * per device the others. Lines end in "\n".
 */
export function snapshotsInfo(
  graph: BlockGraph,
  dump: { header(): string; line(sn: SnapshotInfo): string },
): string {
  const devices = snapshotDevices(graph, {}).filter((d) => d.target);
  const vm = vmstateDevice(devices);
  const lists = devices.map((d) => snapshotsOf(d));
  if (lists.every((l) => l.length === 0)) return 'There is no snapshot available.\n';
  const global = snapshotsOf(vm).filter((sn) => lists.every((l) => l.some((s) => s.name === sn.name)));
  const table = (sns: SnapshotInfo[]) =>
    `${dump.header()}\n${sns.map((sn) => `${dump.line(sn)}\n`).join('')}`;
  let out = 'List of snapshots present on all disks:\n';
  out += global.length > 0 ? table(global.map((sn) => ({ ...sn, id: '--' }))) : 'None\n';
  for (const [i, d] of devices.entries()) {
    const partial = lists[i]!.filter((sn) => !global.some((g) => g.name === sn.name));
    if (partial.length === 0) continue;
    out += `\nList of partial (non-loadable) snapshots on '${backendName(d.node) ?? ''}':\n${table(partial)}`;
  }
  return out;
}

/**
 * The check QEMU lacks: the state header names the machine, the devices and the snapshot fields
 * savevm gave every device. Each device's snapshot `name` must carry exactly those fields (one
 * savevm made them all), the devices must be the same set, the machine the same description.
 */
function checkBelongs(
  header: VmStateHeader,
  machine: SavevmMachine,
  devices: readonly Device[],
  snapshots: readonly SnapshotInfo[],
  name: string,
): void {
  const what = `snapshot '${name}'`;
  if (header.machine !== machine.description) {
    throw genericError(
      `The VM state of ${what} is of another machine ('${header.machine}', this one is '${machine.description}')`,
    );
  }
  const saved = [...header.devices].sort().join(', ');
  const now = devices
    .map((d) => d.name)
    .sort()
    .join(', ');
  if (saved !== now) {
    throw genericError(`The VM state of ${what} was saved with the devices ${saved}, not ${now}`);
  }
  for (const [i, d] of devices.entries()) {
    const sn = snapshots[i]!;
    const clock = sn['vm-clock-sec'] * 1e9 + sn['vm-clock-nsec'];
    if (
      sn['date-sec'] !== header.dateSec ||
      sn['date-nsec'] !== header.dateNsec ||
      clock !== header.vmClockNsec
    ) {
      throw genericError(
        `Snapshot '${name}' on '${d.name}' was not taken with its VM state: the disk has changed since`,
      );
    }
  }
}

/** bdrv_all_get_snapshot_devices and bdrv_all_snapshots_includes_bs. */
function snapshotDevices(graph: BlockGraph, { devices }: DeviceSelection): Device[] {
  if (devices) {
    if (devices.length === 0) throw genericError('At least one device is required for snapshot');
    return devices.map((name) => {
      const node = graph.nodes.get(name);
      if (!node) throw genericError(`No block device node '${name}'`);
      return device(node);
    });
  }
  // By default: the writable media of BlockBackends, then nodes nobody uses (monitor-owned roots).
  const roots = new Set<BlockNode>();
  for (const backend of graph.backends.values()) if (backend.root) roots.add(backend.root);
  for (const node of graph.nodes.values()) if (node.parents.length === 0) roots.add(node);
  return [...roots].filter((n) => !n.readOnly).map(device);
}

function device(node: BlockNode): Device {
  // bdrv_can_snapshot: a read-only node cannot take snapshots.
  const target = node.readOnly ? undefined : snapshotNode(node);
  return { name: backendName(node) ?? node.nodeName, node, target };
}

/** The name of the named BlockBackend whose medium `node` is (bdrv_get_device_name). */
function backendName(node: BlockNode): string | undefined {
  for (const { parent } of node.parents) {
    if (!(parent instanceof BlockNode) && parent.parentName) return parent.parentName;
  }
  return undefined;
}

/** bdrv_all_can_snapshot. */
function checkCanSnapshot(devices: readonly Device[]): void {
  const bad = devices.find((d) => !d.target);
  if (bad) throw genericError(`Device '${bad.name}' is writable but does not support snapshots`);
}

/** bdrv_all_find_vmstate_bs. */
function vmstateDevice(devices: readonly Device[], vmstate?: string): Device {
  if (vmstate === undefined) {
    const first = devices.find((d) => d.target);
    if (!first) throw genericError('no block device can store vmstate for snapshot');
    return first;
  }
  const d = devices.find((x) => x.node.nodeName === vmstate);
  if (!d) throw genericError(`vmstate block device '${vmstate}' does not exist`);
  if (!d.target) throw genericError(`vmstate block device '${vmstate}' does not support snapshots`);
  return d;
}

function snapshotsOf(d: Device): SnapshotInfo[] {
  return [...(d.target?.ops.imageFacts?.().snapshots ?? [])];
}

/** bdrv_snapshot_find: by name only. */
function findSnapshot(d: Device, name: string): SnapshotInfo | undefined {
  return snapshotsOf(d).find((sn) => sn.name === name);
}

/**
 * bdrv_all_create_snapshot: the VM state's size is recorded on `vm` only; after a failure the
 * snapshots made so far are deleted again.
 */
async function createOn(
  devices: readonly Device[],
  name: string,
  fields: { dateSec: number; dateNsec: number; vmClockNsec: number },
  vmState: { device: Device; bytes: number },
): Promise<void> {
  for (const d of devices) {
    const vmStateSize = d === vmState.device ? vmState.bytes : 0;
    try {
      await d.target!.ops.snapshotCreate!(name, { ...fields, vmStateSize, icount: -1 });
    } catch {
      await deleteOn(devices, name).catch(() => {});
      throw genericError(`Could not create snapshot '${name}' on '${d.name}'`);
    }
  }
}

/** bdrv_all_goto_snapshot for one device, by the id of the snapshot found by name. */
async function gotoOn(d: Device, sn: SnapshotInfo, name: string): Promise<void> {
  try {
    await d.target!.ops.snapshotGoto!(sn.id);
  } catch (err) {
    throw genericError(
      `Could not load snapshot '${name}' on '${d.name}': Failed to load snapshot: ${STRERROR[errnoOf(err)]}`,
    );
  }
}

/** bdrv_all_delete_snapshot. */
async function deleteOn(devices: readonly Device[], name: string): Promise<void> {
  for (const d of devices) {
    const sn = findSnapshot(d, name);
    if (!sn) continue;
    try {
      await d.target!.ops.snapshotDelete!(sn.id, sn.name);
    } catch (err) {
      throw genericError(`Could not delete snapshot '${name}' on '${d.name}': ${(err as Error).message}`);
    }
  }
}

/** vm_stop: the run state says so (STOP) and the machine is paused; true if it was running. */
async function stop(graph: BlockGraph, machine: SavevmMachine): Promise<boolean> {
  const wasRunning = graph.runState.running;
  graph.runState.stop();
  await machine.pause();
  return wasRunning;
}

/** vm_start. */
async function start(graph: BlockGraph, machine: SavevmMachine): Promise<void> {
  await machine.resume();
  await graph.runState.cont();
}

/**
 * bdrv_drain_all_begin/end around `section`: requests of every BlockBackend are completed (and
 * the device callbacks they carry have run) and new ones wait until `section` settles.
 */
async function drained<T>(graph: BlockGraph, section: () => Promise<T>): Promise<T> {
  const backends = [...graph.backends.values()];
  const enter = (i: number): Promise<T> =>
    i < backends.length
      ? backends[i]!.drained(() => enter(i + 1))
      : new Promise((resolve) => setTimeout(resolve, 0)).then(section);
  return enter(0);
}

/** "vm-%Y%m%d%H%M%S" of `ms` in local time, as save_snapshot names an untagged snapshot. */
function autoName(ms: number): string {
  const d = new Date(ms);
  const two = (n: number) => String(n).padStart(2, '0');
  return `vm-${d.getFullYear()}${two(d.getMonth() + 1)}${two(d.getDate())}${two(d.getHours())}${two(d.getMinutes())}${two(d.getSeconds())}`;
}
