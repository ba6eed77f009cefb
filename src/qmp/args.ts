/**
 * Command argument schemas and their check, worded as QEMU's QAPI input visitor words it
 * (qapi/qobject-input-visitor.c): members are visited in schema order — a missing required
 * member or a wrong type is reported first — and members left over are reported afterwards.
 */
import { genericError } from '../block/errors.ts';

/** QAPI types our commands use. An enum is a string with a fixed set of values. */
export type ArgType =
  'str' | 'bool' | 'int' | 'any' | { readonly enum: readonly string[] } | { readonly list: ArgType };

export interface ArgSpec {
  readonly type: ArgType;
  readonly optional?: boolean;
  readonly help: string;
}

export type ArgsSchema = Readonly<Record<string, ArgSpec>>;

/** The word QEMU's "expected: ..." uses for each type. */
function expected(type: ArgType): string {
  if (type === 'str' || (typeof type === 'object' && 'enum' in type)) return 'string';
  if (type === 'bool') return 'boolean';
  if (type === 'int') return 'integer';
  return 'array';
}

/**
 * Checks `args` against `schema`; returns them unchanged when they conform.
 * Throws QEMU's GenericError otherwise.
 */
export function checkArgs(
  schema: ArgsSchema,
  args: Readonly<Record<string, unknown>>,
): Record<string, unknown> {
  for (const [name, spec] of Object.entries(schema)) {
    if (!Object.hasOwn(args, name)) {
      if (!spec.optional) throw genericError(`Parameter '${name}' is missing`);
      continue;
    }
    checkValue(spec.type, args[name], name, name);
  }
  const extra = Object.keys(args).find((key) => !Object.hasOwn(schema, key));
  if (extra !== undefined) throw genericError(`Parameter '${extra}' is unexpected`);
  return { ...args };
}

/**
 * `path` is the full name for type errors (`enable[0]`); `name` is what enum errors print,
 * which QEMU leaves as 'null' for list elements (it uses the member name, and they have none).
 */
function checkValue(type: ArgType, value: unknown, path: string, name: string): void {
  if (!hasType(type, value))
    throw genericError(`Invalid parameter type for '${path}', expected: ${expected(type)}`);
  if (typeof type !== 'object') return;
  if ('enum' in type) {
    if (!type.enum.includes(value as string)) {
      throw genericError(`Parameter '${name}' does not accept value '${String(value)}'`);
    }
    return;
  }
  (value as unknown[]).forEach((item, i) => checkValue(type.list, item, `${path}[${i}]`, 'null'));
}

function hasType(type: ArgType, value: unknown): boolean {
  if (type === 'any') return true;
  if (type === 'bool') return typeof value === 'boolean';
  if (type === 'int') return Number.isInteger(value);
  if (type === 'str' || 'enum' in type) return typeof value === 'string';
  return Array.isArray(value);
}
