/**
 * QEMU's KEY=VALUE,... syntax (util/keyval.c), used by -blockdev, -device's and --object's
 * modern parsers, and QEMU's flat-to-nested conversion of dotted option names.
 *
 *   key-vals = [ key '=' val { ',' key '=' val } [ ',' ] ]     key = fragment { '.' fragment }
 *
 * `,,` in a value is a literal comma. A dotted key names a path into nested objects
 * (`file.driver=nbd` → { file: { driver: 'nbd' } }); numeric fragments make lists
 * (`a.0=x,a.1=y` → { a: ['x', 'y'] }). The first fragment must be a QAPI name (a letter, then
 * letters, digits, '-', '_'), later ones a QAPI name or a decimal index. Every leaf is a string;
 * the schema types it later. A repeated key keeps its last value.
 */
import { genericError } from '../block/errors.ts';

export type KeyvalTree = { [key: string]: KeyvalValue };
export type KeyvalValue = string | KeyvalTree | KeyvalValue[];

export interface KeyvalOptions {
  /** May be left out before the first value: `ide-hd,drive=d0` means `driver=ide-hd,drive=d0`. */
  readonly impliedKey?: string;
}

/** QEMU refuses key fragments of 128 characters or more. */
const MAX_FRAGMENT = 127;
const QAPI_NAME = /^[A-Za-z][A-Za-z0-9_-]*/;
const INDEX = /^[0-9]+/;

/** Parses `str`; throws QEMU's error for the first thing wrong with it. */
export function parseKeyval(str: string, opts: KeyvalOptions = {}): KeyvalTree {
  const root: Dict = new Map();
  let pos = 0;
  let implied = opts.impliedKey;
  while (pos < str.length) {
    pos = parseOne(root, str, pos, implied);
    implied = undefined;
  }
  return listify(root, []) as KeyvalTree;
}

/**
 * Builds the nested tree from flat dotted keys whose values are already parsed (QEMU's
 * qdict_crumple, as applied to json: filenames and --image-opts): same path and list rules,
 * same errors, but leaves keep their JSON types, and an object value merges with dotted keys
 * under the same name (`{"file.driver": "file", "file": {"filename": "x"}}`).
 */
export function unflatten(flat: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const root: Dict = new Map();
  for (const [key, value] of Object.entries(flattenTree(flat))) {
    const fragments = key.split('.');
    let cur = root;
    fragments.forEach((fragment, i) => {
      const prefix = fragments.slice(0, i + 1).join('.');
      if (i === fragments.length - 1) return put(cur, fragment, { leaf: value }, prefix);
      cur = put(cur, fragment, undefined, prefix) as Dict;
    });
  }
  return listify(root, []) as Record<string, unknown>;
}

/** The inverse of unflatten: `{ file: { driver: 'x' } }` → `{ 'file.driver': 'x' }`. */
export function flattenTree(tree: Readonly<Record<string, unknown>>, prefix = ''): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(tree)) {
    if (isPlainObject(value) || Array.isArray(value)) {
      Object.assign(out, flattenTree(value as Record<string, unknown>, `${prefix}${key}.`));
    } else {
      out[`${prefix}${key}`] = value;
    }
  }
  return out;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Inner nodes while parsing; a leaf is boxed so that any JSON value (even an object) fits. */
type Dict = Map<string, Dict | Leaf>;
interface Leaf {
  leaf: unknown;
}

/** keyval_parse_one: parses one key=value at `pos` into `root`; returns where the next starts. */
function parseOne(root: Dict, str: string, pos: number, impliedKey: string | undefined): number {
  const len = spanUntil(str, pos, '=,');
  let key = str.slice(pos, pos + len);
  let valueStart: number;
  if (impliedKey !== undefined && len > 0 && str[pos + len] !== '=') {
    key = impliedKey;
    valueStart = pos;
  } else {
    valueStart = -1;
  }
  const fragments = splitKey(key);
  let cur = root;
  fragments.forEach((fragment, i) => {
    if (i < fragments.length - 1)
      cur = put(cur, fragment, undefined, fragments.slice(0, i + 1).join('.')) as Dict;
  });
  if (valueStart < 0) {
    if (str[pos + len] !== '=') throw genericError(`Expected '=' after parameter '${key}'`);
    valueStart = pos + len + 1;
  }
  const [value, next] = readValue(str, valueStart);
  put(cur, fragments[fragments.length - 1]!, { leaf: value }, key);
  return next;
}

/** Splits a key into fragments, refusing what QEMU refuses. */
function splitKey(key: string): string[] {
  const fragments: string[] = [];
  let s = 0;
  for (;;) {
    const rest = key.slice(s);
    const match = (s > 0 ? INDEX.exec(rest) : null) ?? QAPI_NAME.exec(rest);
    const len = match ? match[0].length : 0;
    if (!len || (s + len < key.length && key[s + len] !== '.')) {
      throw genericError(`Invalid parameter '${key}'`);
    }
    if (len > MAX_FRAGMENT) {
      const whole = s === 0 && len === key.length;
      throw genericError(`Parameter${whole ? '' : ' fragment'} '${rest.slice(0, len)}' is too long`);
    }
    fragments.push(rest.slice(0, len));
    s += len;
    if (key[s] !== '.') return fragments;
    s++;
  }
}

/**
 * Reads a value starting at `pos` up to an unescaped ',' (or the end); `,,` stands for ','.
 * Returns the value and the position after the ','. Shared with QemuOpts, which escapes alike.
 */
export function readValue(str: string, pos: number): [string, number] {
  let value = '';
  while (pos < str.length) {
    const c = str[pos]!;
    if (c === ',') {
      if (str[pos + 1] !== ',') return [value, pos + 1];
      pos++;
    }
    value += c;
    pos++;
  }
  return [value, pos];
}

function spanUntil(str: string, pos: number, stops: string): number {
  let i = pos;
  while (i < str.length && !stops.includes(str[i]!)) i++;
  return i - pos;
}

/**
 * keyval_parse_put: makes `cur[key]` an object (value undefined) or the leaf `value`.
 * A scalar where an object is needed, or the reverse, is QEMU's "used inconsistently".
 */
function put(cur: Dict, key: string, value: Leaf | undefined, path: string): Dict | Leaf {
  const old = cur.get(key);
  if (old !== undefined && old instanceof Map !== (value === undefined)) {
    throw genericError(`Parameters '${path}.*' used inconsistently`);
  }
  if (old instanceof Map) return old;
  const next = value ?? new Map();
  cur.set(key, next);
  return next;
}

/**
 * keyval_listify: turns objects whose keys are all indexes into lists; keys must run 0..n-1.
 * `path` is the list of fragments leading to `cur`, for the error texts.
 */
function listify(cur: Dict, path: string[]): Record<string, unknown> | unknown[] {
  const out: Record<string, unknown> = {};
  let hasIndex = false;
  let hasMember = false;
  for (const [key, value] of cur) {
    if (/^[0-9]+$/.test(key)) hasIndex = true;
    else hasMember = true;
    out[key] = value instanceof Map ? listify(value, [...path, key]) : value.leaf;
  }
  const prefix = path.map((p) => `${p}.`).join('');
  if (hasIndex && hasMember) throw genericError(`Parameters '${prefix}*' used inconsistently`);
  if (!hasIndex) return out;
  // n distinct keys form a list only if they are exactly 0..n-1; report the first gap.
  const byIndex = new Map(Object.entries(out).map(([k, v]) => [Number(k), v]));
  const list: unknown[] = [];
  for (let i = 0; i < cur.size; i++) {
    if (!byIndex.has(i)) throw genericError(`Parameter '${prefix}${i}' missing`);
    list.push(byIndex.get(i));
  }
  return list;
}
