/**
 * Validation of one node's options against its driver's schema. QEMU has three input paths,
 * with different typing rules and different error texts, and blockgraph keeps all three:
 *
 * - 'qmp'    blockdev-add and JSON -blockdev: QAPI's strict input visitor; values must already
 *            have their JSON types (`Invalid parameter type for 'file.size', expected: integer`).
 * - 'cli'    -blockdev in keyval syntax: QAPI's keyval visitor; every value is a string typed by
 *            the schema (`Parameter 'size' expects integer`).
 * - 'legacy' -drive, --image-opts, json: and plain filenames: no QAPI visitor; each driver
 *            absorbs its options as QemuOpts, with QemuOpts' texts, and whatever is left over is
 *            refused as `Block format 'raw' does not support the option 'x'`.
 *
 * Error paths follow QEMU: QAPI names the full path from the request's root (`file.cache.direct`)
 * except for enum values, which name only the member (`Parameter 'aio' does not accept value 'x'`
 * even under `file.`); QemuOpts names the option relative to its node (`cache.direct`).
 * Checked in schema order, then unknown keys, as QAPI's visitor and QemuOpts both do.
 */
import { genericError } from '../block/errors.ts';
import { findDriver } from '../drivers/index.ts';
import { flattenTree, isPlainObject } from './keyval.ts';
import type { OptionSpec, OptionsSchema } from './schema.ts';
import { SizeError, strtosz } from './size.ts';

/** Where the options came from (see the file comment). */
export type OptionSource = 'qmp' | 'cli' | 'legacy';

export interface ValidateContext {
  readonly source: OptionSource;
  /** Dotted prefix of these options inside the whole request (`file.` for a child), '' at top. */
  readonly path: string;
  readonly driverName: string;
}

/**
 * Returns a new object holding every option of `schema` that `raw` sets, typed (numbers,
 * booleans, nested objects) and checked, plus the defaults of the ones it leaves out.
 * Child options (type 'child') are returned untouched: an inline object, a node-name, or null
 * where the spec is nullable. Throws a GenericError with QEMU 7.2's text on the first problem.
 */
export function validateOptions(
  schema: OptionsSchema,
  raw: Readonly<Record<string, unknown>>,
  ctx: ValidateContext,
): Record<string, unknown> {
  return validateStruct(schema, raw, ctx, '');
}

/** `where` is the dotted prefix of this struct inside the node (`cache.`), '' at the node. */
function validateStruct(
  schema: OptionsSchema,
  raw: Readonly<Record<string, unknown>>,
  ctx: ValidateContext,
  where: string,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(schema)) {
    const name = new OptionName(ctx, where, key);
    const value = raw[key];
    if (value !== undefined) out[key] = typeValue(spec, value, name);
    else if (spec.required) throw missing(spec, name);
    else {
      const fallback = defaultOf(spec);
      if (fallback !== undefined) out[key] = fallback;
    }
  }
  for (const [key, value] of Object.entries(raw)) {
    if (!(key in schema) && value !== undefined) throw unexpected(new OptionName(ctx, where, key), value);
  }
  return out;
}

/** How one option is named in each kind of error text. */
class OptionName {
  constructor(
    readonly ctx: ValidateContext,
    private readonly where: string,
    readonly key: string,
  ) {}
  /** From the request's root (QAPI). */
  get full(): string {
    return this.ctx.path + this.where + this.key;
  }
  /** From the node (QemuOpts). */
  get relative(): string {
    return this.where + this.key;
  }
  /** The name to report a bad value under, for this source. */
  get forValue(): string {
    return this.ctx.source === 'legacy' ? this.relative : this.full;
  }
  nested(key: string): OptionName {
    return new OptionName(this.ctx, `${this.where}${this.key}.`, key);
  }
}

function typeValue(spec: OptionSpec, value: unknown, name: OptionName): unknown {
  const source = name.ctx.source;
  switch (spec.type) {
    case 'str':
      if (source === 'legacy' && isScalar(value)) return legacyString(value);
      return typeof value === 'string' ? value : wrongType(name, 'string');
    case 'int':
      return checkRange(spec, name, toInt(value, name));
    case 'size':
      return checkRange(spec, name, toSize(value, name));
    case 'bool':
      return toBool(value, name);
    case 'enum':
      return toEnum(spec, value, name);
    case 'object':
      if (!isPlainObject(value)) return wrongType(name, 'object');
      return validateStruct(spec.fields ?? {}, value, name.ctx, `${name.relative}.`);
    case 'list':
      if (!Array.isArray(value)) return wrongType(name, 'array');
      return value.map((item, i) => typeValue(spec.item ?? ANY, item, name.nested(String(i))));
    case 'child':
      if (typeof value === 'string' || isPlainObject(value) || (value === null && spec.nullable))
        return value;
      return wrongType(name, spec.nullable ? 'BlockdevRefOrNull' : 'BlockdevRef');
    case 'any':
      return value;
  }
}

const ANY: OptionSpec = { type: 'any', help: '' };

function toInt(value: unknown, name: OptionName): number {
  const source = name.ctx.source;
  if (source === 'qmp' || typeof value !== 'string') {
    if (Number.isInteger(value) && source !== 'cli') return value as number;
    return wrongType(name, source === 'cli' ? 'string' : 'integer');
  }
  const n = parseCInteger(value);
  if (n !== undefined) return n;
  throw genericError(
    source === 'cli'
      ? `Parameter '${name.full}' expects integer`
      : `Parameter '${name.relative}' expects a number`,
  );
}

/**
 * QAPI declares sizes as 'int' (l2-cache-size, null-co's size); only the QemuOpts layer below
 * reads suffixes. So -blockdev and QMP take plain integers (`1k` "expects integer"), while
 * -drive / --image-opts / json: take `1.5k`; a negative size fails in that layer for all three.
 */
function toSize(value: unknown, name: OptionName): number {
  let bytes: number;
  if (name.ctx.source !== 'legacy') bytes = toInt(value, name);
  else {
    try {
      bytes = Number(strtosz(typeof value === 'string' ? value : String(value)));
    } catch (err) {
      if (!(err instanceof SizeError)) throw err;
      bytes = -1;
    }
  }
  if (bytes < 0) throw genericError(`Parameter '${name.relative}' expects a non-negative number below 2^64`);
  return bytes;
}

/** qapi_bool_parse: the words the command line accepts for a boolean. */
export const BOOL_WORDS: Readonly<Record<string, boolean>> = {
  on: true,
  yes: true,
  true: true,
  off: false,
  no: false,
  false: false,
};

function toBool(value: unknown, name: OptionName): boolean {
  const source = name.ctx.source;
  if (typeof value === 'boolean' && source !== 'cli') return value;
  if (typeof value !== 'string' || source === 'qmp')
    return wrongType(name, source === 'cli' ? 'string' : 'boolean');
  const b = BOOL_WORDS[value];
  if (b === undefined) throw genericError(`Parameter '${name.forValue}' expects 'on' or 'off'`);
  return b;
}

/** Legacy enum errors come from each QEMU driver; the generic one is qapi_enum_parse's. */
const LEGACY_ENUM_ERRORS: Readonly<Record<string, string>> = {
  discard: 'Invalid discard option',
};

function toEnum(spec: OptionSpec, value: unknown, name: OptionName): string {
  const legacy = name.ctx.source === 'legacy';
  if (typeof value !== 'string') return wrongType(name, 'string');
  if (spec.values?.includes(value)) return value;
  if (legacy) throw genericError(LEGACY_ENUM_ERRORS[name.relative] ?? `invalid parameter value: ${value}`);
  // QAPI's visit_type_enum names only the member, not its path (file.aio=x → 'aio').
  throw genericError(`Parameter '${name.key}' does not accept value '${value}'`);
}

function checkRange(spec: OptionSpec, name: OptionName, n: number): number {
  if ((spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max)) {
    throw genericError(
      `Parameter '${name.forValue}' expects a value between ${spec.min ?? '-2^63'} and ${spec.max ?? '2^63-1'}`,
    );
  }
  return n;
}

/**
 * qemu_strtoi64 with base 0, as the keyval visitor and QemuOpts use it: optional blanks and
 * sign, then decimal, 0x hexadecimal or 0 octal, and nothing after. undefined if not a number.
 */
export function parseCInteger(s: string): number | undefined {
  const m = /^\s*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.exec(s);
  if (!m) return undefined;
  const digits = m[2]!;
  const magnitude = /^0[0-7]+$/.test(digits) ? BigInt(`0o${digits.slice(1)}`) : BigInt(digits);
  const n = m[1] === '-' ? -magnitude : magnitude;
  if (n < -(1n << 63n) || n >= 1n << 63n) return undefined;
  return Number(n);
}

function isScalar(v: unknown): v is string | number | boolean {
  return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean';
}

/** How QEMU turns a JSON scalar into a QemuOpts string (qdict_stringify_for_keyval). */
function legacyString(v: string | number | boolean): string {
  if (typeof v === 'boolean') return v ? 'on' : 'off';
  return String(v);
}

function defaultOf(spec: OptionSpec): unknown {
  if (spec.default !== undefined) return spec.default;
  if (spec.type !== 'object' || !spec.fields) return undefined;
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(spec.fields)) {
    const d = defaultOf(field);
    if (d !== undefined) out[key] = d;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

function wrongType(name: OptionName, expected: string): never {
  // keyval can only give a scalar option the wrong type by nesting keys under it (size.x=1).
  if (name.ctx.source === 'cli' && expected === 'string') {
    throw genericError(`Parameters '${name.full}.*' are unexpected`);
  }
  throw genericError(`Invalid parameter type for '${name.full}', expected: ${expected}`);
}

function missing(spec: OptionSpec, name: OptionName): Error {
  if (name.ctx.source === 'legacy' && spec.type === 'child') {
    return genericError(`A block device must be specified for "${name.relative}"`);
  }
  return genericError(`Parameter '${name.ctx.source === 'legacy' ? name.relative : name.full}' is missing`);
}

/**
 * Drivers QEMU opens with bdrv_file_open say "Block protocol"; the others "Block format".
 * blkdebug and blkverify are filters of the first kind.
 */
const FILE_OPEN_FILTERS = new Set(['blkdebug', 'blkverify']);

function unexpected(name: OptionName, value: unknown): Error {
  if (name.ctx.source !== 'legacy') return genericError(`Parameter '${name.full}' is unexpected`);
  // QemuOpts sees flat keys: an unknown nested object shows up as its first dotted leaf.
  const leaves =
    isPlainObject(value) || Array.isArray(value) ? Object.keys(flattenTree({ [name.key]: value })) : [];
  const option = name.relative.slice(0, -name.key.length) + (leaves[0] ?? name.key);
  const driver = name.ctx.driverName;
  const kind = findDriver(driver)?.kind;
  if (kind === 'protocol' || FILE_OPEN_FILTERS.has(driver)) {
    return genericError(`Block protocol '${driver}' doesn't support the option '${option}'`);
  }
  return genericError(`Block format '${driver}' does not support the option '${option}'`);
}
