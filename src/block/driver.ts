/**
 * The driver contract. A driver is a plain object (one file under src/drivers/<kind>/) declaring
 * its name, kind, options schema and capabilities, and an `open` that returns the per-node
 * operations. The generic BlockNode (node.ts) does what QEMU's block/io.c does around every driver:
 * bounds and read-only checks, request accounting, and the defaults for what a driver leaves out.
 */
import type { PersistentBitmaps } from '../bitmaps/persistent.ts';
import type { OptionsSchema } from '../config/schema.ts';
import type { ObjectRegistry } from '../objects/registry.ts';
import type { BlockNode } from './node.ts';
import type { BlockStatus, ChildRole, DriverCapabilities, WriteFlags, ZeroOptions } from './types.ts';

export type DriverKind = 'format' | 'protocol' | 'filter';

/** Emits a QMP event (BLOCK_IMAGE_CORRUPTED, ...) from inside a driver. */
export type EventSink = (event: string, data: Record<string, unknown>) => void;

/** What `open` is given. Children named in the options were opened by the graph first. */
export interface OpenContext {
  readonly nodeName: string;
  readonly readOnly: boolean;
  /** The driver was chosen by probing the image (QEMU's bs->probed), not named by the user. */
  readonly probed?: boolean;
  /** The driver's own options, validated, defaults applied; child options removed. */
  readonly options: Readonly<Record<string, unknown>>;
  /** Opened children by option name (`file`, `backing`, `image`, ...); `null` = explicitly none. */
  readonly children: ReadonlyMap<string, BlockNode | null>;
  readonly emit: EventSink;
  /** The graph's user-creatable objects (secrets, throttle groups); absent in hand-built contexts. */
  readonly objects?: ObjectRegistry;
  /**
   * Opens a child the driver found out about itself (qcow2's backing file named in its header),
   * as bdrv_open_child does: options without `driver` have their format probed. The child is
   * linked to this node under `name` in `role`, closed with it, and closed again if this open
   * fails. Absent where a context is built by hand (tests).
   */
  readonly openChild?: (
    options: Record<string, unknown>,
    name: string,
    role: ChildRole,
  ) => Promise<BlockNode>;
}

/**
 * The per-node operations a driver implements. Offsets and lengths are bytes, already checked
 * against `length()` by BlockNode (except for growable protocols writing past the end).
 * Optional members get BlockNode's defaults: writeZeroes writes a zero buffer, discard does
 * nothing, flush does nothing, blockStatus reports "data, allocated" for the whole range.
 */
export interface BlockDriverOps {
  length(): number;
  read(offset: number, dst: Uint8Array): Promise<void>;
  write?(offset: number, src: Uint8Array, flags: WriteFlags): Promise<void>;
  /**
   * A write with WriteFlags.compressed (QEMU's bdrv_co_pwritev_compressed_part). Absent: such
   * writes fail with ENOTSUP, as block_driver_can_compress() decides in block/io.c.
   */
  writeCompressed?(offset: number, src: Uint8Array): Promise<void>;
  writeZeroes?(offset: number, bytes: number, opts: ZeroOptions): Promise<void>;
  discard?(offset: number, bytes: number): Promise<void>;
  flush?(): Promise<void>;
  blockStatus?(offset: number, bytes: number): Promise<BlockStatus>;
  truncate?(bytes: number): Promise<void>;
  close?(): Promise<void>;
  /**
   * Offsets and lengths of requests must be multiples of this (QEMU's bl.request_alignment;
   * default 1). BlockBackend pads unaligned requests and read-modify-writes (block/alignment.ts).
   */
  readonly requestAlignment?: number;
  /**
   * The driver opened the node read-only although read-write was asked, as auto-read-only
   * allows (bdrv_apply_auto_read_only): the node is read-only from then on.
   */
  readonly readOnly?: boolean;
  /**
   * A blkdebug event (QAPI BlkdebugEvent name) was signalled on this node (bdrv_debug_event).
   * Only blkdebug listens; see BlockNode.debugEvent for who signals what.
   */
  debugEvent?(event: string): void;
  /**
   * The node's exact filename (bs->exact_filename: a protocol's path or URI), '' if none;
   * block/filename.ts derives the reported name, plain or `json:{...}`, from it.
   */
  filename?(): string;
  /**
   * Facts for ImageInfo that only the driver knows (QEMU's bdrv_get_info and
   * bdrv_get_allocated_file_size). Raw and filter nodes without it report their child's
   * (block/node-info.ts).
   */
  imageFacts?(): ImageFacts;
  /** Driver-specific data for `info` / query-named-block-nodes (`format-specific`). */
  info?(): Record<string, unknown>;
  /**
   * Internal snapshots (bdrv_snapshot_create / _goto / _delete), on a node without requests in
   * flight. Failures are BlockIOErrors with the errno QEMU's driver returns (ENOENT, EEXIST,
   * ENOTSUP, ...) or GenericErrors with QEMU's text.
   */
  snapshotCreate?(name: string, opts?: SnapshotCreateOptions): Promise<void>;
  /** Makes the snapshot with this id (else this name) the active state. */
  snapshotGoto?(idOrName: string): Promise<void>;
  /** Deletes the snapshot matching both given selectors. */
  snapshotDelete?(id?: string, name?: string): Promise<void>;
  /**
   * The VM state area (bdrv_save_vmstate / bdrv_load_vmstate): bytes at `pos` of the area the
   * active layer keeps for savevm, which snapshotCreate with `vmStateSize` then records in the
   * new snapshot. Writes need a read-write node. Failures are BlockIOErrors.
   */
  saveVmState?(pos: number, src: Uint8Array): Promise<void>;
  /**
   * Reads VM state bytes at `pos` of the active layer's area or, given `snapshotId`, of that
   * internal snapshot's without making it active (blockgraph's: loadvm checks a state before it
   * reverts any disk). Bytes never written read as zeros.
   */
  loadVmState?(pos: number, dst: Uint8Array, snapshotId?: string): Promise<void>;
  /**
   * bdrv_change_backing_file: records `name` (and `format`) as the backing file in the image's
   * metadata; the backing child stays as it is. Failures are BlockIOErrors (EINVAL, EPERM).
   */
  changeBackingFile?(name: string, format: string): Promise<void>;
  /**
   * Dirty bitmaps stored in the image (qcow2's bitmaps extension): loaded at open, stored by
   * BlockNode.close. Absent: block-dirty-bitmap-add refuses `persistent` on the node.
   */
  readonly persistentBitmaps?: PersistentBitmaps;
  /**
   * Live graph changes (graph/live.ts): from now on the child `name` (`file`, `backing`, ...) is
   * `node`, or none when null — what a driver sees through bs->file / bs->backing after QEMU's
   * bdrv_replace_child_noperm. Called with nothing in flight on this node, and called again with
   * the old child if the change is rolled back. Throws a QmpError, changing nothing, when the
   * driver cannot use `node` there. Absent: the node's children are fixed at open and the graph
   * refuses the change.
   */
  replaceChild?(name: string, node: BlockNode | null): void;
  /**
   * blockdev-reopen in place (graph/reopen.ts): adopts `options` (the driver's own, validated,
   * defaults applied, children removed) and `readOnly`, or throws a QmpError with QEMU's text
   * and changes nothing. Called with nothing in flight, after a flush. Absent: a persistent
   * driver is reopened by closing these ops and opening new ones over the same children; others
   * accept only unchanged options.
   */
  reopen?(options: Readonly<Record<string, unknown>>, readOnly: boolean): Promise<void>;
  /**
   * bdrv_drained_begin / bdrv_drained_end reached this node (BlockDriver.bdrv_drain_begin/end):
   * a driver that holds requests back (throttle) lets them go until drainEnd, so a drain never
   * waits for it. Calls nest; every drainBegin is followed by one drainEnd.
   */
  drainBegin?(): void;
  drainEnd?(): void;
}

/** QEMUSnapshotInfo members a new snapshot may set; the date defaults to now. */
export interface SnapshotCreateOptions {
  readonly id?: string;
  readonly dateSec?: number;
  readonly dateNsec?: number;
  readonly vmStateSize?: number;
  readonly vmClockNsec?: number;
  readonly icount?: number;
}

/** See BlockDriverOps.imageFacts. Absent members are absent from ImageInfo. */
export interface ImageFacts {
  /** Bytes allocated on the host (`actual-size`). */
  readonly actualSize?: number;
  /** `cluster-size`. */
  readonly clusterSize?: number;
  /** `dirty-flag`: the image was not closed cleanly. */
  readonly dirty?: boolean;
  /** The backing file name as recorded in the image (`backing-filename`). */
  readonly backingFilename?: string;
  /** The backing file format as recorded in the image (`backing-filename-format`). */
  readonly backingFormat?: string;
  /** Internal snapshots (`snapshots` in ImageInfo; `qemu-img snapshot -l`). */
  readonly snapshots?: readonly SnapshotInfo[];
}

/** QAPI SnapshotInfo: one internal snapshot, as `qemu-img info --output=json` lists it. */
export interface SnapshotInfo {
  readonly id: string;
  readonly name: string;
  readonly 'vm-state-size': number;
  readonly 'date-sec': number;
  readonly 'date-nsec': number;
  readonly 'vm-clock-sec': number;
  readonly 'vm-clock-nsec': number;
  readonly icount?: number;
}

export interface ChildPermRequest {
  readonly role: ChildRole;
  /** Cumulative permissions the node's own parents take on it, and share on it. */
  readonly parentPerm: number;
  readonly parentShared: number;
  readonly readOnly: boolean;
}

/** What ImageCreator.create is given besides the image's own node and options. */
export interface CreateContext {
  /**
   * Nodes the options name by reference besides the image's `file` (qcow2's `data-file`),
   * opened read-write by the caller (blockdev-create resolves node-names; the CLI creates them).
   */
  readonly children: ReadonlyMap<string, BlockNode>;
}

/** Image creation (QEMU's bdrv_co_create): what blockdev-create, `create` and `convert` use. */
export interface ImageCreator {
  /**
   * The members of QAPI BlockdevCreateOptions<Driver> besides `driver`, in QAPI's names;
   * `child` members (`file`, `data-file`) are BlockdevRefs the caller resolves to nodes.
   */
  readonly options: OptionsSchema;
  /**
   * Writes a fresh image into `file`, an opened, empty, writable node. `options` are validated
   * against `options` (defaults applied), children replaced by the nodes in `ctx.children`.
   * Throws a GenericError with QEMU's text when the options are refused.
   */
  create(file: BlockNode, options: Readonly<Record<string, unknown>>, ctx: CreateContext): Promise<void>;
}

/**
 * Storage creation for a protocol (file-posix's raw_co_create and its kin): blockdev-create
 * with this driver makes the empty storage, then opens it and sizes it as a raw image.
 */
export interface ProtocolCreator {
  /** The members of BlockdevCreateOptions<Driver> besides `driver`, `size` and `preallocation`. */
  readonly options: OptionsSchema;
  /**
   * Creates (or empties) the storage `options` name and returns the blockdev-add options that
   * open it. Throws a GenericError with QEMU's "Could not create ..." text on failure.
   */
  create(options: Readonly<Record<string, unknown>>): Promise<Record<string, unknown>>;
}

export interface BlockDriver {
  readonly name: string;
  readonly kind: DriverKind;
  readonly options: OptionsSchema;
  readonly capabilities: DriverCapabilities;
  /** Legacy filename prefixes this protocol handles in `file=`: `nbd`, `http`, `blkdebug`, ... */
  readonly protocols?: readonly string[];
  /** Turn a legacy filename (`nbd:host:port`, `blkdebug:cfg:img`) into this driver's options. */
  parseFilename?(filename: string): Record<string, unknown>;
  /** Permissions on a child; default per kind (see graph/permissions.ts). */
  childPerms?(req: ChildPermRequest): { perm: number; shared: number };
  /** Present on format drivers that can create images. */
  readonly creator?: ImageCreator;
  /** Present on protocol drivers whose storage blockdev-create can make. */
  readonly protocolCreator?: ProtocolCreator;
  open(ctx: OpenContext): Promise<BlockDriverOps>;
}
