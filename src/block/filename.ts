/**
 * A node's filename as QEMU 7.2 reports it (block.c: bdrv_refresh_filename). A node has an
 * "exact" filename when opening that plain name would build the same node again (a protocol's
 * path, a format over it, `blkdebug::IMAGE`); otherwise it is named `json:` followed by its
 * full open options: the strong options it was given, its driver and its children's full options,
 * in the key order QEMU's QDict iterates them.
 */
// qemu-img's QObject JSON writer; QEMU's json: names are written by the same qobject_to_json.
import { qobjectJson } from '../config/qjson.ts';
import type { BlockNode } from './node.ts';

/**
 * The runtime options that change what a node does (BlockDriver.strong_runtime_opts); a name
 * ending in `.` covers a whole struct. Giving any of them rules out a plain filename.
 */
const STRONG_OPTIONS: Readonly<Record<string, readonly string[]>> = {
  'null-co': ['size', 'read-zeroes'],
  // blockgraph's own protocols without a plain name: what tells their images apart.
  memory: ['size', 'store'],
  idb: ['database', 'name'],
  raw: ['offset', 'size'],
  throttle: ['throttle-group'],
  qcow2: ['encrypt.'],
  nbd: ['server.', 'export', 'tls-creds', 'tls-hostname'],
  blkdebug: [
    'config',
    'inject-error.',
    'set-state.',
    'align',
    'max-transfer',
    'opt-write-zero',
    'max-write-zero',
    'opt-discard',
    'max-discard',
  ],
};

/** Present in a `json:` name, yet compatible with a plain one (append_strong_runtime_options). */
const ALWAYS_STRONG = ['driver', 'filename'];

/** The node's filename (bs->filename): its exact filename, else `json:` and its full options. */
export function refreshedFilename(node: BlockNode): string {
  return exactFilename(node) || `json:${qobjectJson(fullOpenOptions(node))}`;
}

/**
 * bs->exact_filename, '' if none. Drivers with their own rule (a protocol's name, nbd's URI,
 * snapshot-access) give it through `ops.filename`; blkdebug, blkverify and copy-before-write
 * build theirs from their children's; a format node takes its protocol file's when it was given
 * no strong option and its backing file is the one the image names.
 */
export function exactFilename(node: BlockNode): string {
  switch (node.driver.name) {
    case 'blkdebug':
      return blkdebugFilename(node);
    case 'blkverify':
      return blkverifyFilename(node);
    case 'copy-before-write':
      // cbw_refresh_filename: the name of the node it filters, json: or not.
      return node.primaryChild()?.filename() ?? '';
    case 'null-co':
      // null_refresh_filename: `null-co://` only while no strong option was given.
      return givesStrongOptions(node) ? '' : (node.ops.filename?.() ?? '');
  }
  if (node.ops.filename) return node.ops.filename();
  const primary = node.primaryChild();
  if (!primary || node.driver.kind !== 'format' || !opensFiles(primary)) return '';
  if (givesStrongOptions(node) || backingOverridden(node)) return '';
  return exactFilename(primary);
}

/**
 * The driver has bdrv_file_open: a protocol, or a filter reached through a protocol prefix
 * (blkdebug:, blkverify:), so a format over it can be opened from its name.
 */
function opensFiles(node: BlockNode): boolean {
  return node.driver.kind === 'protocol' || (node.driver.protocols?.length ?? 0) > 0;
}

/** bs->full_open_options: what `json:` shows, in insertion order (QDict order comes later). */
export function fullOpenOptions(node: BlockNode): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of ALWAYS_STRONG) if (node.options[key] !== undefined) out[key] = node.options[key];
  Object.assign(out, strongOptions(node));
  out.driver ??= node.driver.name;
  const overridden = backingOverridden(node);
  // bs->children lists the newest edge first (bdrv_attach_child_noperm inserts at the head).
  for (const child of [...node.childList].reverse()) {
    if (child.role === 'backing' && !overridden) continue;
    out[child.name] = fullOpenOptions(child.node);
  }
  if (overridden && !node.child('backing')) out.backing = null;
  return out;
}

/**
 * The strong options the node was given, structs flattened to dotted keys as bs->options holds
 * them. node.options carries the schema's defaults too, so a value equal to its default counts
 * as not given (QEMU would show an explicit `size: 1073741824` on null-co; blockgraph cannot).
 */
function strongOptions(node: BlockNode): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const defaults = node.driver.options as Record<string, { default?: unknown }>;
  for (const name of STRONG_OPTIONS[node.driver.name] ?? []) {
    const key = name.endsWith('.') ? name.slice(0, -1) : name;
    const value = node.options[key];
    if (value === undefined || value === defaults[key]?.default) continue;
    if (name.endsWith('.')) flatten(`${key}.`, value, out);
    else out[key] = value;
  }
  return out;
}

function givesStrongOptions(node: BlockNode): boolean {
  return Object.keys(strongOptions(node)).length > 0;
}

function flatten(prefix: string, value: unknown, out: Record<string, unknown>): void {
  if (value === null || typeof value !== 'object') {
    out[prefix.slice(0, -1)] = value;
    return;
  }
  for (const [k, v] of Object.entries(value)) flatten(`${prefix}${k}.`, v, out);
}

/**
 * bdrv_backing_overridden: the backing child is not the one the image names (a `backing` option
 * was given, naming another node or none). A backing file opened from the image header is not.
 */
function backingOverridden(node: BlockNode): boolean {
  if (node.options.backing === undefined) return false;
  const recorded = node.ops.imageFacts?.().backingFilename;
  const backing = node.child('backing');
  return backing ? recorded !== backing.filename() : recorded !== undefined;
}

/** blkdebug_refresh_filename: `blkdebug:CONFIG:IMAGE` unless options beyond `config` were given. */
function blkdebugFilename(node: BlockNode): string {
  const image = node.child('image');
  const exact = image ? exactFilename(image) : '';
  const others = Object.keys(strongOptions(node)).filter((key) => key !== 'config');
  if (!exact || others.length > 0) return '';
  return `blkdebug:${(node.options.config as string | undefined) ?? ''}:${exact}`;
}

/** blkverify_refresh_filename: `blkverify:RAW:TEST` when both children have exact names. */
function blkverifyFilename(node: BlockNode): string {
  const raw = node.child('raw');
  const test = node.child('test');
  const rawName = raw ? exactFilename(raw) : '';
  const testName = test ? exactFilename(test) : '';
  return rawName && testName ? `blkverify:${rawName}:${testName}` : '';
}
