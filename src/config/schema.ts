/**
 * Option schemas: every driver declares its options as data, next to its code. The schema is the
 * user interface — it drives validation (with QEMU's error texts), the CLI help and the demo's forms.
 * Types follow QAPI: `str`, `int`, `size` (bytes, k/M/G/T suffixes on the command line), `bool`,
 * `enum`, `child` (a BlockdevRef: inline options or a node-name string; `null` where allowed),
 * `object` (a nested struct with its own schema), `list` (of `item`), `any` (passed through).
 */
import type { ChildRole } from '../block/types.ts';

export type OptionType = 'str' | 'int' | 'size' | 'bool' | 'enum' | 'child' | 'object' | 'list' | 'any';

export interface OptionSpec {
  readonly type: OptionType;
  readonly help: string;
  readonly required?: boolean;
  readonly default?: unknown;
  /** `enum`: the allowed values. */
  readonly values?: readonly string[];
  /** `int`/`size`: inclusive bounds. */
  readonly min?: number;
  readonly max?: number;
  /** `child`: the role the child is attached with; `null` is accepted when `nullable`. */
  readonly role?: ChildRole;
  readonly nullable?: boolean;
  /** `object`: the nested schema; `list`: the schema of one item. */
  readonly fields?: OptionsSchema;
  readonly item?: OptionSpec;
}

export type OptionsSchema = Readonly<Record<string, OptionSpec>>;

/** Options every node accepts (QAPI BlockdevOptions base members). */
export const COMMON_NODE_OPTIONS = {
  driver: { type: 'str', required: true, help: 'block driver name' },
  'node-name': { type: 'str', help: 'node name (letter first; letters, digits, - . _; at most 31)' },
  'read-only': { type: 'bool', default: false, help: 'open the node read-only' },
  'auto-read-only': {
    type: 'bool',
    default: false,
    help: 'fall back to read-only when read-write is not possible',
  },
  'force-share': { type: 'bool', default: false, help: 'share all permissions (read-only only)' },
  discard: {
    type: 'enum',
    values: ['ignore', 'unmap', 'off', 'on'],
    default: 'ignore',
    help: 'discard requests: ignore or unmap',
  },
  cache: {
    type: 'object',
    help: 'cache mode',
    fields: {
      direct: { type: 'bool', default: false, help: 'bypass the host page cache' },
      'no-flush': { type: 'bool', default: false, help: 'ignore flush requests' },
    },
  },
  'detect-zeroes': {
    type: 'enum',
    values: ['off', 'on', 'unmap'],
    default: 'off',
    help: 'turn all-zero writes into zero writes',
  },
} as const satisfies OptionsSchema;
