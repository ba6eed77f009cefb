/**
 * The name QEMU shows for an opened image (`image:` in qemu-img info, `filename` in its JSON):
 * the plain filename when the options say nothing more than "this file", otherwise
 * `json:{...}` of the options that change what the guest sees (bdrv_refresh_filename in block.c).
 *
 * Approximation, documented: QEMU keeps per-driver lists of "strong" runtime options; here every
 * driver-specific option counts as strong, and only the options common to all nodes (node-name,
 * read-only, cache, ...) are left out. The two agree for raw, file and null-co's size/read-zeroes.
 */
import { COMMON_NODE_OPTIONS } from '../config/schema.ts';
import { qobjectJson } from '../config/qjson.ts';

type Options = Record<string, unknown>;

/** The display name of the image opened from `options` (the user's options tree). */
export function displayFilename(options: Options): string {
  return exactFilename(options) ?? `json:${qobjectJson(strongOptions(options))}`;
}

/**
 * The plain filename when the node's strong options are exactly `filename` (a protocol) or
 * nothing but a `file` child that has a plain filename itself (raw, filters).
 */
function exactFilename(options: Options): string | undefined {
  const keys = Object.keys(strongOptions(options)).filter((k) => k !== 'driver');
  if (keys.length === 1 && keys[0] === 'filename' && typeof options.filename === 'string') {
    return options.filename;
  }
  const file = options.file;
  if (keys.length === 1 && keys[0] === 'file' && isObject(file)) return exactFilename(file);
  return undefined;
}

/** `options` without the options every node has, recursively into inline children. */
function strongOptions(options: Options): Options {
  const out: Options = {};
  for (const [key, value] of Object.entries(options)) {
    if (key !== 'driver' && key in COMMON_NODE_OPTIONS) continue;
    out[key] = isObject(value) ? strongOptions(value) : value;
  }
  return out;
}

function isObject(value: unknown): value is Options {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
