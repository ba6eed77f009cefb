/**
 * Legacy filenames: what `-drive file=...` and qemu-img's positional argument accept, turned
 * into blockdev options. Only these go through protocol parsing; an option spelled out as
 * `file.filename=a:b` is always a literal path.
 *
 *   json:{...}                          the whole options tree (dotted keys allowed inside)
 *   nbd:host:port[:exportname=e]        nbd:unix:/path[:exportname=e]
 *   nbd://host[:port]/e  nbd+tcp://...  nbd+unix:///e?socket=/path
 *   http:// https:// ftp:// ftps://     QEMU's curl driver: { driver: scheme, url }
 *   blkdebug:config:image, file:path, null-co://   parsed by those drivers (parseFilename)
 *   a path                              the realm's default protocol: { driver: 'file', filename }
 *                                       in Node, { driver: 'blob', name } in the worker
 *
 * A prefix counts as a protocol only when a ':' comes before any '/' (QEMU's
 * path_has_protocol), so `./a:b` and `dir/a:b` are paths. A driver in src/drivers that
 * declares the protocol and a parseFilename takes precedence over the parsers here.
 */
import { genericError } from '../block/errors.ts';
import { findDriver, findProtocol } from '../drivers/index.ts';
import { isPlainObject, unflatten } from './keyval.ts';

type Options = Record<string, unknown>;

/** The port an NBD URI without one connects to (NBD_DEFAULT_PORT). */
export const NBD_DEFAULT_PORT = 10809;

/**
 * The full options tree for an image named by a legacy filename: a `format` node over the
 * protocol node, or the protocol node alone when `format` is itself a protocol driver.
 * Without `format` the format node is 'raw': callers that can read the image first probe it
 * (probe.ts) and pass what they found, as QEMU does.
 */
export function filenameToOptions(filename: string, format?: string): Options {
  if (filename.startsWith('json:')) {
    const tree = parseJsonFilename(filename);
    return tree.driver === undefined ? { driver: format ?? 'raw', ...tree } : tree;
  }
  const protocol = protocolOptions(filename);
  if (format !== undefined && findDriver(format)?.kind === 'protocol') {
    return protocol.driver === format ? protocol : { driver: format, filename };
  }
  return { driver: format ?? 'raw', file: protocol };
}

/** The options of the protocol node a legacy filename names (`file=` of -drive). */
export function protocolOptions(filename: string): Options {
  if (filename.startsWith('json:')) return parseJsonFilename(filename);
  const prefix = protocolPrefix(filename);
  if (prefix === undefined) return plainFileOptions(filename);
  const driver = findProtocol(prefix);
  if (driver?.parseFilename) return { driver: driver.name, ...driver.parseFilename(filename) };
  const parse = BUILTIN_PROTOCOLS[prefix];
  if (parse) return parse(filename, prefix);
  if (driver) return { driver: driver.name, filename };
  throw genericError(`Unknown protocol '${prefix}'`);
}

/**
 * The protocol driver plain paths open with in this realm (QEMU's is always `file`). A realm
 * without files sets its own: the worker names registered Blobs (blob.ts) this way.
 */
let defaultProtocol = 'file';

/** Makes `driver` (a protocol driver's name) the one plain paths open with from now on. */
export function setDefaultProtocol(driver: string): void {
  if (findDriver(driver)?.kind !== 'protocol') throw genericError(`Unknown protocol driver '${driver}'`);
  defaultProtocol = driver;
}

/** Protocol options for a plain path: the default protocol's parseFilename, else `filename`. */
export function plainFileOptions(path: string): Options {
  const driver = findDriver(defaultProtocol)!;
  return driver.parseFilename
    ? { driver: driver.name, ...driver.parseFilename(path) }
    : { driver: driver.name, filename: path };
}

/** The protocol name of `filename`, or undefined when it is a plain path. */
export function protocolPrefix(filename: string): string | undefined {
  const m = /^([^:/]*):/.exec(filename);
  return m ? m[1] : undefined;
}

/**
 * json:{...}: the object, with dotted keys expanded and merged with nested objects
 * (QEMU flattens the parsed JSON, then nests it again).
 */
export function parseJsonFilename(filename: string): Options {
  let parsed: unknown;
  try {
    parsed = JSON.parse(filename.slice('json:'.length));
  } catch (err) {
    throw genericError(`Could not parse the JSON options: ${(err as Error).message}`);
  }
  if (!isPlainObject(parsed)) throw genericError('Invalid JSON object given');
  return unflatten(parsed);
}

type FilenameParser = (filename: string, prefix: string) => Options;

const curl: FilenameParser = (url, prefix) => ({ driver: prefix, url });

/** Parsers for protocols without a driver of their own here (ftp, ftps); data only, no I/O. */
const BUILTIN_PROTOCOLS: Readonly<Record<string, FilenameParser>> = {
  http: curl,
  https: curl,
  ftp: curl,
  ftps: curl,
};

/**
 * NBD filenames (the nbd driver's parseFilename), as block/nbd.c's nbd_parse_filename converts them: a URI (nbd://, nbd+tcp://,
 * nbd+unix://) or the legacy `nbd:` form. `server.port` stays a string, as in QAPI's
 * InetSocketAddress.
 */
export function parseNbdFilename(filename: string): Options {
  if (filename.includes('://')) return parseNbdUri(filename);
  let spec = filename;
  let exportName: string | undefined;
  const en = spec.indexOf(':exportname=');
  if (en >= 0) {
    exportName = spec.slice(en + ':exportname='.length);
    spec = spec.slice(0, en);
    // QEMU gives up on an empty export name without a word; the server is then "missing".
    if (exportName === '') spec = 'nbd:';
  }
  if (!spec.startsWith('nbd:')) throw genericError("File name string for NBD must start with 'nbd:'");
  const hostSpec = spec.slice('nbd:'.length);
  if (hostSpec === '') throw genericError('NBD server address missing');
  const server = hostSpec.startsWith('unix:')
    ? { type: 'unix', path: hostSpec.slice('unix:'.length) }
    : { type: 'inet', ...inetParse(hostSpec) };
  return { driver: 'nbd', server, ...(exportName ? { export: exportName } : {}) };
}

/** inet_parse (util/qemu-sockets.c) for `host:port`, `[v6addr]:port` and `:port`. */
function inetParse(spec: string): { host: string; port: string } {
  const v6 = /^\[([^\]]*)\]:([^,]+)/.exec(spec);
  if (spec.startsWith('[')) {
    if (!v6) throw genericError(`error parsing IPv6 address '${spec}'`);
    return { host: v6[1]!, port: v6[2]! };
  }
  const m = /^([^:]*):([^,]+)/.exec(spec);
  if (!m) throw genericError(`error parsing address '${spec}'`);
  return { host: m[1]!, port: m[2]! };
}

function parseNbdUri(filename: string): Options {
  const bad = () => genericError('No valid URL specified');
  let uri: URL;
  try {
    uri = new URL(filename);
  } catch {
    throw bad();
  }
  const scheme = uri.protocol.slice(0, -1);
  if (scheme !== 'nbd' && scheme !== 'nbd+tcp' && scheme !== 'nbd+unix') throw bad();
  const params = [...uri.searchParams];
  const isUnix = scheme === 'nbd+unix';
  if (params.length > 1 || (isUnix ? params.length === 0 : params.length > 0)) throw bad();
  const path = decodeURIComponent(uri.pathname);
  const exportName = path.startsWith('/') ? path.slice(1) : path;
  const out: Options = { driver: 'nbd' };
  if (isUnix) {
    const [name, socket] = params[0]!;
    if (uri.host !== '' || name !== 'socket') throw bad();
    out.server = { type: 'unix', path: socket };
  } else {
    if (uri.hostname === '') throw bad();
    const host = uri.hostname.replace(/^\[(.*)\]$/, '$1');
    out.server = { type: 'inet', host, port: uri.port || String(NBD_DEFAULT_PORT) };
  }
  if (exportName) out.export = exportName;
  return out;
}
