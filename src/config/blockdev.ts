/**
 * -blockdev as QEMU 7.2 reads it (vl.c, qobject_input_visitor_new_str): a JSON object when the
 * argument starts with '{' (typed strictly, like QMP's blockdev-add), otherwise keyval syntax
 * with the implied key `driver` (`-blockdev null-co,node-name=n0` works) whose string values
 * the schema types. Either way the result goes to BlockGraph.blockdevAdd with its source.
 */
import { genericError } from '../block/errors.ts';
import { parseKeyval } from './keyval.ts';
import type { OptionSource } from './validate.ts';

export interface BlockdevArg {
  readonly options: Record<string, unknown>;
  readonly source: OptionSource;
}

export function parseBlockdev(str: string): BlockdevArg {
  if (!str.startsWith('{')) return { options: parseKeyval(str, { impliedKey: 'driver' }), source: 'cli' };
  try {
    return { options: JSON.parse(str) as Record<string, unknown>, source: 'qmp' };
  } catch (err) {
    throw genericError(`JSON parse error, ${(err as Error).message}`);
  }
}
