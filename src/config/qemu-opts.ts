/**
 * QemuOpts' KEY=VALUE,... syntax (util/qemu-option.c), which -drive and -device still use.
 * Unlike keyval: keys stay flat (`file.driver` is one key; nesting happens later), a key
 * without '=' is a boolean flag (`readonly` = `readonly=on`, `noreadonly` = `readonly=off`,
 * both deprecated with a warning), an implied first key may even be empty, and `id` must be
 * an identifier. `,,` escapes a comma in values. A repeated key keeps its last value.
 */
import { genericError } from '../block/errors.ts';
import { readValue } from './keyval.ts';

export interface ParsedOpts {
  /** Flat options in order of first appearance; all values are strings. */
  readonly options: Record<string, string>;
  /** Deprecation warnings QEMU prints for this string (one line each). */
  readonly warnings: string[];
}

const IDENTIFIER = /^[A-Za-z][A-Za-z0-9_.-]*$/;

/** Parses `str`; `impliedKey` names the first value when it has no key (-device's `driver`). */
export function parseQemuOpts(str: string, impliedKey?: string): ParsedOpts {
  const options: Record<string, string> = {};
  const warnings: string[] = [];
  let pos = 0;
  while (pos < str.length) {
    const len = span(str, pos);
    let key: string;
    let value: string;
    if (str[pos + len] === '=') {
      key = str.slice(pos, pos + len);
      [value, pos] = readValue(str, pos + len + 1);
    } else if (impliedKey !== undefined && pos === 0) {
      key = impliedKey;
      [value, pos] = readValue(str, pos);
    } else {
      const flag = str.slice(pos, pos + len);
      const negated = flag.startsWith('no');
      key = negated ? flag.slice(2) : flag;
      value = negated ? 'off' : 'on';
      warnings.push(`short-form boolean option '${flag}' deprecated`, `Please use ${key}=${value} instead`);
      pos += len + 1;
    }
    options[key] = value;
  }
  const id = options.id;
  if (id !== undefined && !IDENTIFIER.test(id)) throw genericError("Parameter 'id' expects an identifier");
  return { options, warnings };
}

/** The identifier rule QemuOpts applies to `id` (id_wellformed). */
export function isIdentifier(s: string): boolean {
  return IDENTIFIER.test(s);
}

function span(str: string, pos: number): number {
  let i = pos;
  while (i < str.length && str[i] !== '=' && str[i] !== ',') i++;
  return i - pos;
}
