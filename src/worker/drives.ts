/**
 * The worker's drives: BlockBackends the page does I/O on through drive handles (the browser's
 * frontends, such as v86's disks, sit on the page). A drive is made from a -drive string (with
 * QEMU's rules, snapshot=on included) or from blockdev options or a node-name plus backend
 * settings (-blockdev plus -device drive=...).
 */
import type { BlockBackend } from '../block/backend.ts';
import type { ReadErrorPolicy, WriteErrorPolicy } from '../block/error-policy.ts';
import { genericError, QmpError } from '../block/errors.ts';
import { driveToConfig, parseDrive, type DriveConfig } from '../config/drive.ts';
import { attachBackend, openDrive } from '../graph/drive.ts';
import type { BlockGraph } from '../graph/graph.ts';

/** A drive over a node given as blockdev-add options or as the node-name of an existing node. */
export interface DriveSpec {
  /** The drive's (BlockBackend's) name, as -drive id= and query-block's `device`. */
  readonly id: string;
  /** Options of a new node, closed with the drive; or the node-name of a node that stays. */
  readonly node: Record<string, unknown> | string;
  readonly readOnly?: boolean;
  readonly werror?: WriteErrorPolicy;
  readonly rerror?: ReadErrorPolicy;
  /** false: writethrough (every write is flushed). Default true. */
  readonly writeback?: boolean;
}

/** What the page learns about a drive it made. */
export interface DriveInfo {
  readonly id: string;
  /** The node-name of the drive's root node (the overlay with snapshot=on). */
  readonly nodeName: string;
  /** Bytes, when the drive was made. */
  readonly length: number;
  readonly readOnly: boolean;
}

export class DriveTable {
  private readonly drives = new Map<string, { backend: BlockBackend; config?: DriveConfig }>();

  constructor(private readonly graph: BlockGraph) {}

  /** Makes a drive from a -drive string or a DriveSpec; QEMU's texts when refused. */
  async add(spec: string | DriveSpec): Promise<DriveInfo> {
    if (typeof spec === 'string') {
      const configs = [...this.drives.values()].flatMap((d) => (d.config ? [d.config] : []));
      const config = driveToConfig(parseDrive(spec), configs);
      return this.register(await openDrive(this.graph, config), config);
    }
    const { id, node, ...opts } = spec;
    if (!id) throw genericError("Parameter 'id' is missing");
    const root = typeof node === 'string' ? this.graph.lookup(node) : await this.graph.open(node);
    return this.register(await attachBackend(this.graph, id, root, opts));
  }

  /** The drive named `id`, or QEMU's DeviceNotFound. */
  get(id: string): BlockBackend {
    const drive = this.drives.get(id);
    if (!drive) throw new QmpError('DeviceNotFound', `Device '${id}' not found`);
    return drive.backend;
  }

  /** Flushes the drive and closes it; its nodes close unless the monitor owns them. */
  async remove(id: string): Promise<void> {
    const backend = this.get(id);
    this.drives.delete(id);
    try {
      await backend.flush();
    } finally {
      await backend.close();
    }
  }

  private register(backend: BlockBackend, config?: DriveConfig): DriveInfo {
    this.drives.set(backend.name, { backend, config });
    const root = backend.root!;
    return {
      id: backend.name,
      nodeName: root.nodeName,
      length: backend.length(),
      readOnly: backend.readOnly,
    };
  }
}
