/**
 * JSON as QEMU's qobject_to_json() writes it: strings escape control and non-ASCII characters
 * as \uXXXX with upper-case hex; compact output separates with ", " and ": "; pretty output
 * indents by four spaces.
 */

/** A JSON string literal in QEMU's escaping. */
export function jsonString(text: string): string {
  let out = '"';
  for (const ch of text) {
    for (let i = 0; i < ch.length; i++) out += escapeUnit(ch.charCodeAt(i));
  }
  return `${out}"`;
}

const SHORT_ESCAPES: Readonly<Record<number, string>> = {
  0x22: '\\"',
  0x5c: '\\\\',
  0x08: '\\b',
  0x0c: '\\f',
  0x0a: '\\n',
  0x0d: '\\r',
  0x09: '\\t',
};

function escapeUnit(unit: number): string {
  if (SHORT_ESCAPES[unit]) return SHORT_ESCAPES[unit];
  if (unit < 0x20 || unit >= 0x7f) return `\\u${unit.toString(16).toUpperCase().padStart(4, '0')}`;
  return String.fromCharCode(unit);
}

type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

/** Pretty JSON, keys in the order given (QAPI struct order), as `--output=json` prints it. */
export function prettyJson(value: Json, indent = ''): string {
  const inner = `${indent}    `;
  if (Array.isArray(value)) {
    if (value.length === 0) return '[\n]';
    return `[\n${value.map((v) => inner + prettyJson(v, inner)).join(',\n')}\n${indent}]`;
  }
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value);
    if (entries.length === 0) return '{\n}';
    const body = entries.map(([k, v]) => `${inner}${jsonString(k)}: ${prettyJson(v, inner)}`).join(',\n');
    return `{\n${body}\n${indent}}`;
  }
  return typeof value === 'string' ? jsonString(value) : String(value);
}

/**
 * Compact JSON of a QDict (the `json:{...}` filenames): keys in QDict's hash order, i.e. bucket
 * tdb_hash(key) % 512 ascending and, within a bucket, the newest key first (qobject/qdict.c).
 */
export function qdictJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(qdictJson).join(', ')}]`;
  if (typeof value === 'string') return jsonString(value);
  if (value === null || typeof value !== 'object') return String(value);
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record).map((key, index) => ({ key, index, bucket: tdbHash(key) % QDICT_BUCKETS }));
  keys.sort((a, b) => a.bucket - b.bucket || b.index - a.index);
  return `{${keys.map(({ key }) => `${jsonString(key)}: ${qdictJson(record[key])}`).join(', ')}}`;
}

const QDICT_BUCKETS = 512;

/** The hash of qobject/qdict.c (from tdb), over the key's UTF-8 bytes, in 32-bit arithmetic. */
function tdbHash(key: string): number {
  const bytes = new TextEncoder().encode(key);
  let value = Math.imul(0x238f13af, bytes.length) >>> 0;
  for (let i = 0; i < bytes.length; i++) value = (value + ((bytes[i] << ((i * 5) % 24)) >>> 0)) >>> 0;
  return (Math.imul(1103515243, value) + 12345) >>> 0;
}
