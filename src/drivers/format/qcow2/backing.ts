/**
 * Backing and external data file names recorded in an image, resolved as QEMU's
 * bdrv_get_full_backing_filename does: relative to the image that names them, by the same
 * protocol. No Node imports: this runs in the browser too.
 */

/** True for `scheme://...` names (http, https, ...), resolved as URLs. */
function isUrl(name: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(name);
}

/**
 * `name` as seen from the image whose filename is `base`: absolute paths and URLs stay, a
 * relative name is a sibling of `base` (path_combine: the part of `base` up to its last '/').
 */
export function resolveRelative(base: string, name: string): string {
  if (isUrl(name) || name.startsWith('/')) return name;
  if (isUrl(base)) return new URL(name, base).href;
  const slash = base.lastIndexOf('/');
  return slash < 0 ? name : base.slice(0, slash + 1) + name;
}

/**
 * Protocol options for a file named by an image whose own protocol node was opened with
 * `fileOptions`: the same driver with the resolved filename (other options, such as a memory
 * store name, are not inherited). Undefined when that protocol has no filenames.
 */
export function siblingFileOptions(
  fileOptions: Readonly<Record<string, unknown>>,
  name: string,
): Record<string, unknown> | undefined {
  const base = fileOptions.filename;
  if (typeof base !== 'string' || typeof fileOptions.driver !== 'string') return undefined;
  return { driver: fileOptions.driver, filename: resolveRelative(base, name) };
}
