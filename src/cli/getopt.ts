/**
 * GNU getopt_long as QEMU's tools use it: short options in a spec string ("f:rU", ':' = takes an
 * argument), long options with `--name value` or `--name=value`, bundling (`-qv`, `-P0xab`), and
 * permutation (options may follow operands: `read 0 4k -q`); `--` ends the options.
 * Errors are returned, not printed: qemu-img and qemu-io word them differently.
 */

export interface LongOption {
  readonly name: string;
  readonly hasArg: boolean;
  /** The key reported in `opts`; defaults to the long name. */
  readonly key?: string;
}

export type GetoptError =
  { kind: 'invalid'; option: string; arg: string } | { kind: 'missing'; option: string; arg: string };

export interface GetoptResult {
  /** Options in command-line order: [short letter or long key, argument or ''] */
  readonly opts: [string, string][];
  readonly operands: string[];
  readonly error?: GetoptError;
}

export function getopt(
  args: readonly string[],
  spec: string,
  longs: readonly LongOption[] = [],
): GetoptResult {
  const opts: [string, string][] = [];
  const operands: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--') {
      operands.push(...args.slice(i + 1));
      break;
    }
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = arg.slice(2, eq < 0 ? undefined : eq);
      const long = longs.find((l) => l.name === name);
      if (!long || (!long.hasArg && eq >= 0))
        return { opts, operands, error: { kind: 'invalid', option: name, arg } };
      let value = '';
      if (long.hasArg) {
        if (eq >= 0) value = arg.slice(eq + 1);
        else if (i + 1 < args.length) value = args[++i];
        else return { opts, operands, error: { kind: 'missing', option: name, arg } };
      }
      opts.push([long.key ?? long.name, value]);
      continue;
    }
    if (!arg.startsWith('-') || arg === '-') {
      operands.push(arg);
      continue;
    }
    for (let j = 1; j < arg.length; j++) {
      const letter = arg[j];
      const at = spec.indexOf(letter);
      if (letter === ':' || at < 0)
        return { opts, operands, error: { kind: 'invalid', option: letter, arg } };
      if (spec[at + 1] !== ':') {
        opts.push([letter, '']);
        continue;
      }
      if (j + 1 < arg.length) opts.push([letter, arg.slice(j + 1)]);
      else if (i + 1 < args.length) opts.push([letter, args[++i]]);
      else return { opts, operands, error: { kind: 'missing', option: letter, arg } };
      break;
    }
  }
  return { opts, operands };
}

/** glibc's own diagnostics, as qemu-io's commands print them on stderr: "read: invalid option -- 'z'". */
export function glibcMessage(program: string, error: GetoptError): string {
  const long = error.arg.startsWith('--');
  if (error.kind === 'invalid') {
    return long
      ? `${program}: unrecognized option '${error.arg}'`
      : `${program}: invalid option -- '${error.option}'`;
  }
  return long
    ? `${program}: option '--${error.option}' requires an argument`
    : `${program}: option requires an argument -- '${error.option}'`;
}
