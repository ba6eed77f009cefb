/**
 * The blkdebug config file (QEMU's -readconfig syntax, util/qemu-config.c qemu_config_foreach):
 *
 *     # comment
 *     [inject-error]
 *     event = "read_aio"
 *     errno = "28"
 *
 * Groups `[inject-error]` and `[set-state]` (optionally `[group "id"]`), then `name = "value"`
 * lines. Values are typed like QemuOpts (numbers in C's base-0 syntax, bools on/off). Errors are
 * QEMU 7.2's texts. Browser-safe: it parses text, the caller reads the file.
 */
import { genericError } from '../../block/errors.ts';

export type ConfigGroup = 'inject-error' | 'set-state';

/** One group from the file, its values typed. */
export interface ConfigSection {
  readonly group: ConfigGroup;
  readonly values: Record<string, string | number | boolean>;
}

type Kind = 'str' | 'num' | 'bool';

/** The parameters of each group and their QemuOpts types (blkdebug.c inject_error_opts etc.). */
const GROUPS: Readonly<Record<ConfigGroup, Readonly<Record<string, Kind>>>> = {
  'inject-error': {
    event: 'str',
    state: 'num',
    iotype: 'str',
    errno: 'num',
    sector: 'num',
    once: 'bool',
    immediately: 'bool',
  },
  'set-state': { event: 'str', state: 'num', new_state: 'num' },
};

/** Parses a whole config file; throws on the first error, as qemu_config_parse does. */
export function parseBlkdebugConfig(text: string): ConfigSection[] {
  const sections: ConfigSection[] = [];
  let current: { group: string; raw: Record<string, string> } | undefined;
  const flush = (): void => {
    if (current) sections.push(typed(current.group, current.raw));
  };
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const group = line.startsWith('[') ? /^\[(?:(\S+)\s+"[^"]+"\]|([^\]]+))/.exec(line) : null;
    if (group) {
      flush();
      current = { group: group[1] ?? group[2] ?? '', raw: {} };
      continue;
    }
    const param = parseParam(line);
    if (!param) throw genericError('parse error');
    if (!current) throw genericError('no group defined');
    current.raw[param[0]] = param[1];
  }
  flush();
  return sections;
}

/**
 * `name = "value"`, mimicking sscanf(" %63s = \"%1023[^\"]\"") and its fallback " %63s = \"\"",
 * which accepts any line with a word on it as that name with an empty value.
 */
function parseParam(line: string): [string, string] | undefined {
  const word = /^\s*(\S+)/.exec(line);
  if (!word?.[1]) return undefined;
  const value = /^\s*=\s*"([^"]+)"/.exec(line.slice(word[0].length));
  return [word[1], value?.[1] ?? ''];
}

function typed(group: string, raw: Record<string, string>): ConfigSection {
  if (group !== 'inject-error' && group !== 'set-state') {
    throw genericError(`There is no option group '${group}'`);
  }
  const kinds = GROUPS[group];
  const values: Record<string, string | number | boolean> = {};
  for (const [name, text] of Object.entries(raw)) {
    const kind = kinds[name];
    if (!kind) throw genericError(`Invalid parameter '${name}'`);
    values[name] = kind === 'num' ? parseNumber(name, text) : kind === 'bool' ? parseBool(name, text) : text;
  }
  return { group, values };
}

/** QemuOpts numbers: strtoull base 0 (decimal, 0x hex, 0 octal); a '-' wraps as in C. */
function parseNumber(name: string, text: string): number {
  const m = /^\s*(-?)(0x[0-9a-f]+|0[0-7]*|[1-9][0-9]*)$/i.exec(text);
  if (!m?.[2]) throw genericError(`Parameter '${name}' expects a number`);
  const digits = m[2];
  const n = /^0x/i.test(digits)
    ? parseInt(digits.slice(2), 16)
    : digits.length > 1 && digits.startsWith('0')
      ? parseInt(digits, 8)
      : parseInt(digits, 10);
  return m[1] ? -n : n;
}

/** qapi_bool_parse. */
function parseBool(name: string, text: string): boolean {
  if (['on', 'yes', 'true', 'y'].includes(text)) return true;
  if (['off', 'no', 'false', 'n'].includes(text)) return false;
  throw genericError(`Parameter '${name}' expects 'on' or 'off'`);
}
