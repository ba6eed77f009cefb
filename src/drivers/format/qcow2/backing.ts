/**
 * Backing and external data file names recorded in an image, resolved as QEMU's
 * bdrv_get_full_backing_filename does: relative to the image that names them, by the same
 * protocol. No Node imports: this runs in the browser too.
 */
import type { BlockNode } from '../../../block/node.ts';

/** True for `scheme://...` names (http, https, ...), resolved as URLs. */
function isUrl(name: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(name);
}

/** QEMU's path_has_protocol: a ':' before any '/' (`http://`, `json:`, `nbd:`). */
function hasProtocol(name: string): boolean {
  return /^[^:/]*:/.test(name);
}

/**
 * `name` as seen from the image whose filename is `base`: absolute paths and names with a
 * protocol stay, a relative name is a sibling of `base` (path_combine: the part of `base` up to
 * its last '/').
 */
export function resolveRelative(base: string, name: string): string {
  if (hasProtocol(name) || name.startsWith('/')) return name;
  if (isUrl(base)) return new URL(name, base).href;
  const slash = base.lastIndexOf('/');
  return slash < 0 ? name : base.slice(0, slash + 1) + name;
}

/**
 * Protocol options for a file named by an image whose protocol node is `file`. A name with a
 * protocol of its own (a URL, json:) opens by that protocol, as in QEMU. Otherwise, when `file`
 * was opened by path (`filename`: file, opfs), the same driver with the resolved path (other
 * options, such as a memory store name, are not inherited); else the resolved name is parsed as
 * QEMU parses a backing file name: a plain name by the realm's default protocol
 * (config/filename.ts) — in the worker, the Blob registered under that name.
 */
export async function siblingFileOptions(file: BlockNode, name: string): Promise<Record<string, unknown>> {
  const { driver, filename } = file.options;
  if (typeof filename === 'string' && typeof driver === 'string' && !hasProtocol(name)) {
    return { driver, filename: resolveRelative(filename, name) };
  }
  // Imported when used: filename.ts needs the driver registry, which imports this module's driver.
  const { protocolOptions } = await import('../../../config/filename.ts');
  return protocolOptions(resolveRelative(file.filename(), name));
}
