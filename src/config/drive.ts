/**
 * -drive, the legacy way to configure a disk (blockdev.c: drive_new and blockdev_init), and the
 * shorthands -hda..-hdd, -cdrom, -fda/-fdb. One -drive makes a BlockBackend (the `backend`
 * settings below) over a format node over a protocol node:
 *
 *   -drive file=disk.img,format=raw,if=ide,cache=none,file.locking=off,l2-cache-size=1M
 *     → { driver: 'raw', cache: {direct: true, ...}, l2-cache-size: '1M',
 *         file: { driver: 'file', filename: 'disk.img', locking: 'off' } }
 *
 * `file=` is a legacy filename (filename.ts: `nbd:...`, `json:{...}`, ...); options the -drive
 * layer does not consume go to the format node, `file.*` to the protocol node; both stay
 * strings and are validated by the graph as source 'legacy', with QEMU's texts.
 */
import { genericError } from '../block/errors.ts';
import { findDriver } from '../drivers/index.ts';
import { driveThrottle, renameDriveOptions, THROTTLE_KEYS, type DriveThrottle } from './drive-throttle.ts';
import { parseJsonFilename, protocolOptions } from './filename.ts';
import { isPlainObject, unflatten } from './keyval.ts';
import { parseQemuOpts, type ParsedOpts } from './qemu-opts.ts';
import { BOOL_WORDS, parseCInteger, type OptionSource } from './validate.ts';

export { parseDevice, type DeviceConfig } from './device.ts';

export type DriveInterface = 'ide' | 'virtio' | 'floppy' | 'none';
export type DriveMedia = 'disk' | 'cdrom';
export type WriteErrorAction = 'report' | 'ignore' | 'stop' | 'enospc';
export type ReadErrorAction = 'report' | 'ignore' | 'stop';

export interface DriveBackendConfig {
  readonly werror: WriteErrorAction;
  readonly rerror: ReadErrorAction;
  readonly readOnly: boolean;
  /** false: writethrough (every write is followed by a flush), from cache=writethrough/directsync. */
  readonly writeback: boolean;
  readonly interface: DriveInterface;
  readonly media: DriveMedia;
  /** The position on the interface: index = bus * unitsPerBus + unit (unit alone without buses). */
  readonly index: number;
  readonly bus: number;
  readonly unit: number;
  /** I/O limits (throttling.*, bps=, ...) and their group; absent when no limit is set. */
  readonly throttle?: DriveThrottle;
}

export interface DriveConfig {
  readonly id: string;
  /** Options for BlockGraph.open (source `source`); null for a drive without medium. */
  readonly blockdev: Record<string, unknown> | null;
  readonly source: OptionSource;
  /** No format was given: `blockdev.driver` is 'raw' until the caller probes (probe.ts). */
  readonly probe: boolean;
  /** snapshot=on: writes go to a temporary overlay, never to the image. */
  readonly snapshot: boolean;
  readonly backend: DriveBackendConfig;
}

/** Parses a -drive argument (QemuOpts syntax: flat keys, `,,` escapes a comma). */
export function parseDrive(str: string): ParsedOpts {
  return parseQemuOpts(str);
}

export type DriveShorthand = '-hda' | '-hdb' | '-hdc' | '-hdd' | '-cdrom' | '-fda' | '-fdb';

/** The -drive a shorthand stands for (vl.c: drive_add with HD_OPTS / CDROM_OPTS / FD_OPTS). */
export function driveShorthand(flag: DriveShorthand, file: string): ParsedOpts {
  const options: Record<string, string> = { file };
  if (flag === '-cdrom') Object.assign(options, { index: '2', media: 'cdrom' });
  else if (flag === '-fda' || flag === '-fdb')
    Object.assign(options, { if: 'floppy', index: flag === '-fda' ? '0' : '1' });
  else Object.assign(options, { index: String('abcd'.indexOf(flag[3]!)), media: 'disk' });
  return { options, warnings: [] };
}

/** Interfaces QEMU knows but blockgraph's machine has no controller for. */
const MACHINE_LACKS = new Set(['scsi', 'sd', 'pflash', 'mtd', 'xen']);
/** Units per bus (QEMU's if_max_devs on a pc machine); 0 means a single bus. */
const UNITS_PER_BUS: Readonly<Record<DriveInterface, number>> = { ide: 2, virtio: 0, floppy: 0, none: 0 };

/** cache= modes as bdrv_parse_cache_mode maps them. */
const CACHE_MODES: Readonly<Record<string, { direct: boolean; noFlush: boolean; writeback: boolean }>> = {
  writeback: { direct: false, noFlush: false, writeback: true },
  none: { direct: true, noFlush: false, writeback: true },
  off: { direct: true, noFlush: false, writeback: true },
  writethrough: { direct: false, noFlush: false, writeback: false },
  unsafe: { direct: false, noFlush: true, writeback: true },
  directsync: { direct: true, noFlush: false, writeback: false },
};

const WERROR = ['report', 'ignore', 'stop', 'enospc'];
const RERROR = ['report', 'ignore', 'stop'];
const AIO = ['threads', 'native', 'io_uring'];
/** Options the -drive layer consumes; everything else belongs to the nodes. */
const DRIVE_KEYS = new Set([
  'file',
  'format',
  'if',
  'index',
  'bus',
  'unit',
  'media',
  'id',
  'read-only',
  'snapshot',
  'cache',
  'cache.writeback',
  'werror',
  'rerror',
  'aio',
  'copy-on-read',
  ...THROTTLE_KEYS,
]);

/**
 * Turns a parsed -drive into the drive's configuration. `existing` are the drives made before,
 * for default ids, free units and duplicate checks. Throws QEMU 7.2's errors, in drive_new's order.
 */
export function driveToConfig(drive: ParsedOpts, existing: readonly DriveConfig[] = []): DriveConfig {
  const opts = renameDriveOptions(drive.options);
  const media = driveMedia(opts.media);
  const iface = driveInterface(opts.if);
  const { bus, unit, index } = placeDrive(opts, iface, existing);
  const id = opts.id ?? defaultId(iface, media, bus, unit);
  if (existing.some((d) => d.id === id)) throw genericError(`Duplicate ID '${id}' for drive`);
  if (iface === 'floppy') {
    for (const key of ['werror', 'rerror']) {
      if (opts[key] !== undefined) throw genericError(`${key} is not supported by this bus type`);
    }
  }
  const snapshot = parseBool('snapshot', opts.snapshot) ?? false;
  const readOnly = parseBool('read-only', opts['read-only']) ?? media === 'cdrom';
  const cache = cacheMode(opts);
  const werror = pick(opts.werror, WERROR, 'enospc', (v) => `'${v}' invalid write error action`);
  const rerror = pick(opts.rerror, RERROR, 'report', (v) => `'${v}' invalid read error action`);
  const throttle = driveThrottle(opts, id);
  checkUnsupported(opts, cache.direct);
  const { blockdev, probe } = driveBlockdev(opts, readOnly, cache);
  return {
    id,
    blockdev,
    source: 'legacy',
    probe,
    snapshot,
    backend: {
      werror: werror as WriteErrorAction,
      rerror: rerror as ReadErrorAction,
      readOnly,
      writeback: cache.writeback,
      interface: iface,
      media,
      index,
      bus,
      unit,
      ...(throttle ? { throttle } : {}),
    },
  };
}

function driveMedia(value: string | undefined): DriveMedia {
  if (value === undefined || value === 'disk' || value === 'cdrom') return value ?? 'disk';
  throw genericError(`'${value}' invalid media`);
}

/** The default interface is the machine's: IDE, as on QEMU's pc. */
function driveInterface(value: string | undefined): DriveInterface {
  const v = value ?? 'ide';
  if (v in UNITS_PER_BUS) return v as DriveInterface;
  if (MACHINE_LACKS.has(v)) throw genericError(`machine type does not support if=${v},bus=0,unit=0`);
  throw genericError(`unsupported bus type '${v}'`);
}

/** Bus and unit from index=, bus=, unit=, or the first free unit (drive_new). */
function placeDrive(
  opts: Record<string, string>,
  iface: DriveInterface,
  existing: readonly DriveConfig[],
): { bus: number; unit: number; index: number } {
  let bus = parseNumber('bus', opts.bus) ?? 0;
  let unit = parseNumber('unit', opts.unit) ?? -1;
  const index = parseNumber('index', opts.index) ?? -1;
  const max = UNITS_PER_BUS[iface];
  if (index !== -1) {
    if (bus !== 0 || unit !== -1) throw genericError('index cannot be used with bus and unit');
    bus = max ? Math.floor(index / max) : 0;
    unit = max ? index % max : index;
  }
  const taken = (b: number, u: number) =>
    existing.some((d) => d.backend.interface === iface && d.backend.bus === b && d.backend.unit === u);
  if (unit === -1) {
    unit = 0;
    while (taken(bus, unit)) {
      unit++;
      if (max && unit >= max) [unit, bus] = [unit - max, bus + 1];
    }
  }
  if (max && unit >= max) throw genericError(`unit ${unit} too big (max is ${max - 1})`);
  if (taken(bus, unit)) throw genericError(`drive with bus=${bus}, unit=${unit} (index=${index}) exists`);
  return { bus, unit, index: max ? bus * max + unit : unit };
}

/** QEMU's generated ids: ide0-hd0, ide1-cd1, virtio0, floppy1, none0. */
function defaultId(iface: DriveInterface, media: DriveMedia, bus: number, unit: number): string {
  if (iface !== 'ide') return `${iface}${unit}`;
  return `ide${bus}-${media === 'cdrom' ? 'cd' : 'hd'}${unit}`;
}

/** QemuOpts number (qemu_strtou64, base 0); undefined when absent. */
function parseNumber(key: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = parseCInteger(value);
  if (n === undefined) throw genericError(`Parameter '${key}' expects a number`);
  return n;
}

function parseBool(key: string, value: string | undefined): boolean | undefined {
  if (value === undefined) return undefined;
  const b = BOOL_WORDS[value];
  if (b === undefined) throw genericError(`Parameter '${key}' expects 'on' or 'off'`);
  return b;
}

function pick(
  value: string | undefined,
  allowed: string[],
  fallback: string,
  error: (v: string) => string,
): string {
  if (value === undefined) return fallback;
  if (!allowed.includes(value)) throw genericError(error(value));
  return value;
}

interface CacheSettings {
  /** What the nodes get: cache.direct / cache.no-flush, unset when neither cache= nor the key is. */
  readonly direct?: boolean | string;
  readonly noFlush?: boolean | string;
  readonly writeback: boolean;
}

/** cache= sets defaults; explicit cache.direct / cache.no-flush / cache.writeback win. */
function cacheMode(opts: Record<string, string>): CacheSettings {
  const mode = opts.cache === undefined ? undefined : CACHE_MODES[opts.cache];
  if (opts.cache !== undefined && !mode) throw genericError('invalid cache option');
  const wb = parseBool('cache.writeback', opts['cache.writeback']);
  return {
    direct: opts['cache.direct'] ?? mode?.direct,
    noFlush: opts['cache.no-flush'] ?? mode?.noFlush,
    writeback: wb ?? mode?.writeback ?? true,
  };
}

/** Options blockgraph has no implementation for yet are refused by name, not ignored. */
function checkUnsupported(opts: Record<string, string>, direct: CacheSettings['direct']): void {
  if (parseBool('copy-on-read', opts['copy-on-read'])) {
    throw genericError("-drive option 'copy-on-read' is not supported yet");
  }
  const aio = opts.aio;
  if (aio === undefined) return;
  if (!AIO.includes(aio)) throw genericError('invalid aio option');
  // blockgraph has one I/O path, so aio= only has QEMU's consistency check left to do.
  if (aio === 'native' && direct !== true && direct !== 'on') {
    throw genericError('aio=native was specified, but it requires cache.direct=on, which was not specified.');
  }
}

/** The node options of a drive: format node over protocol node, or null without medium. */
function driveBlockdev(
  opts: Record<string, string>,
  readOnly: boolean,
  cache: CacheSettings,
): { blockdev: Record<string, unknown> | null; probe: boolean } {
  const nodeKeys = Object.keys(opts).filter((k) => !DRIVE_KEYS.has(k));
  const node: Record<string, unknown> = unflatten(Object.fromEntries(nodeKeys.map((k) => [k, opts[k]])));
  const file = opts.file ?? '';
  if (file === '' && node.file === undefined && !node.driver) return { blockdev: null, probe: false };
  const format = opts.format;
  if (format !== undefined) {
    if (node.driver !== undefined) throw genericError("Cannot specify both 'driver' and 'format'");
    if (!findDriver(format)) throw genericError(`Unknown driver '${format}'`);
    node.driver = format;
  }
  if (file.startsWith('json:')) {
    // json: describes the top node; the -drive's own options take precedence over it.
    Object.assign(node, { ...parseJsonFilename(file), ...node });
  } else if (file !== '') {
    const extra = isPlainObject(node.file) ? node.file : {};
    if (extra.filename !== undefined)
      throw genericError("Can't specify 'file' and 'filename' options at the same time");
    node.file = { ...protocolOptions(file), ...extra };
  }
  const probe = node.driver === undefined;
  const cacheNode = {
    ...(isPlainObject(node.cache) ? node.cache : {}),
    ...(cache.direct !== undefined ? { direct: cache.direct } : {}),
    ...(cache.noFlush !== undefined ? { 'no-flush': cache.noFlush } : {}),
  };
  const blockdev: Record<string, unknown> = { driver: 'raw', ...node, 'read-only': readOnly };
  if (Object.keys(cacheNode).length > 0) blockdev.cache = cacheNode;
  else delete blockdev.cache;
  return { blockdev, probe };
}
