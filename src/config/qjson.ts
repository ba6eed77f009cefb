/**
 * JSON as QEMU writes it (qobject/qjson.c): strings escape control and non-ASCII characters as
 * \uXXXX with upper-case hex.
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

/**
 * JSON of a QObject as qobject_to_json() / qobject_to_json_pretty() write it. Dictionary keys come
 * in QDict's hash order — bucket tdb_hash(key) % 512 ascending, newest key first within a bucket
 * (qobject/qdict.c) — which is why qemu-img info prints "virtual-size" before "filename".
 * Compact output separates with ", " and ": "; pretty output indents by four spaces.
 */
export function qobjectJson(value: unknown, pretty = false, indent = ''): string {
  const inner = pretty ? `${indent}    ` : '';
  const wrap = (open: string, items: string[], close: string): string => {
    if (!pretty) return `${open}${items.join(', ')}${close}`;
    if (items.length === 0) return `${open}\n${indent}${close}`;
    return `${open}\n${items.map((item) => inner + item).join(',\n')}\n${indent}${close}`;
  };
  if (Array.isArray(value))
    return wrap(
      '[',
      value.map((v) => qobjectJson(v, pretty, inner)),
      ']',
    );
  if (typeof value === 'string') return jsonString(value);
  if (value === null || typeof value !== 'object') return String(value);
  const record = value as Record<string, unknown>;
  const items = qdictKeys(record).map(
    (key) => `${jsonString(key)}: ${qobjectJson(record[key], pretty, inner)}`,
  );
  return wrap('{', items, '}');
}

/**
 * The keys of `record` in QDict's iteration order (qdict_first/qdict_next): bucket by bucket,
 * newest key first within a bucket. QEMU's JSON and human dumps (qemu-img info) both use it.
 */
export function qdictKeys(record: Record<string, unknown>): string[] {
  const keys = Object.keys(record).map((key, index) => ({
    key,
    index,
    bucket: tdbHash(key) % QDICT_BUCKETS,
  }));
  keys.sort((a, b) => a.bucket - b.bucket || b.index - a.index);
  return keys.map(({ key }) => key);
}

const QDICT_BUCKETS = 512;

/** The hash of qobject/qdict.c (from tdb), over the key's UTF-8 bytes, in 32-bit arithmetic. */
function tdbHash(key: string): number {
  const bytes = new TextEncoder().encode(key);
  let value = Math.imul(0x238f13af, bytes.length) >>> 0;
  for (let i = 0; i < bytes.length; i++) value = (value + ((bytes[i] << ((i * 5) % 24)) >>> 0)) >>> 0;
  return (Math.imul(1103515243, value) + 12345) >>> 0;
}
