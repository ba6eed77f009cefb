/**
 * -device for the disk frontends blockgraph has: `ide-hd`, `ide-cd`, `virtio-blk-pci`,
 * `floppy`. QemuOpts syntax with the implied key `driver` (`ide-hd,drive=d0,bus=ide.0,unit=0`),
 * or JSON (`{"driver": "ide-hd", "drive": "d0"}`), as QEMU 7.2 accepts both.
 */
import { genericError } from '../block/errors.ts';
import { isIdentifier, parseQemuOpts } from './qemu-opts.ts';

export type DeviceModel = 'ide-hd' | 'ide-cd' | 'virtio-blk-pci' | 'floppy';

export interface DeviceConfig {
  readonly driver: DeviceModel;
  readonly id?: string;
  /** The -drive id or node-name the device attaches to. */
  readonly drive?: string;
  readonly bus?: string;
  readonly unit?: number;
  /** Deprecation warnings QEMU prints for this string. */
  readonly warnings: string[];
}

/** The properties each model has (besides `driver` and `id`). */
const PROPERTIES: Readonly<Record<DeviceModel, readonly string[]>> = {
  'ide-hd': ['drive', 'bus', 'unit'],
  'ide-cd': ['drive', 'bus', 'unit'],
  'virtio-blk-pci': ['drive', 'bus'],
  floppy: ['drive', 'unit'],
};

/** Parses and checks a -device argument; throws QEMU's texts. */
export function parseDevice(str: string): DeviceConfig {
  const { options, warnings } = str.startsWith('{') ? parseJson(str) : parseQemuOpts(str, 'driver');
  const driver = options.driver ?? '';
  if (!(driver in PROPERTIES)) throw genericError(`'${driver}' is not a valid device model name`);
  const model = driver as DeviceModel;
  for (const key of Object.keys(options)) {
    if (key !== 'driver' && key !== 'id' && !PROPERTIES[model].includes(key)) {
      throw genericError(`Property '${model}.${key}' not found`);
    }
  }
  if (options.id !== undefined && !isIdentifier(options.id))
    throw genericError("Parameter 'id' expects an identifier");
  if (options.drive === undefined && model === 'virtio-blk-pci') throw genericError('drive property not set');
  if (options.drive === undefined && model === 'ide-hd') throw genericError('No drive specified');
  const unit = options.unit === undefined ? undefined : Number(options.unit);
  if (unit !== undefined && !/^\s*[0-9]+$/.test(options.unit!))
    throw genericError("Parameter 'unit' expects integer");
  const out: DeviceConfig = { driver: model, warnings };
  return Object.assign(out, pickDefined({ id: options.id, drive: options.drive, bus: options.bus, unit }));
}

function parseJson(str: string): { options: Record<string, string>; warnings: string[] } {
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(str) as Record<string, unknown>;
  } catch (err) {
    throw genericError(`JSON parse error, ${(err as Error).message}`);
  }
  const options = Object.fromEntries(Object.entries(parsed).map(([k, v]) => [k, String(v)]));
  return { options, warnings: [] };
}

function pickDefined(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}
