/**
 * An Execute over the command table for code that holds a graph rather than a QMP connection
 * (test fixtures, page-side code): the command's arguments are checked and it runs on `ctx` as
 * the monitor runs it.
 */
import type { Execute } from '../../jobs/job-command.ts';
import { genericError } from '../../block/errors.ts';
import type { BlockGraph } from '../../graph/graph.ts';
import { checkArgs } from '../args.ts';
import { COMMANDS } from './index.ts';

export function localExecute(graph: BlockGraph): Execute {
  const ctx = { graph, session: { negotiate: () => {} }, quit: () => {} };
  return async (name, args = {}) => {
    const command = COMMANDS.get(name);
    if (!command) throw genericError(`The command ${name} has not been found`);
    return command.run(ctx, command.args === 'boxed' ? { ...args } : checkArgs(command.args, args));
  };
}
