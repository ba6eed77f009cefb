/** Run-state commands (qapi/run-state.json, qapi/misc.json): stop, cont, query-status. */
import type { QmpCommand } from './types.ts';
import { NOTHING } from './types.ts';

export const stop: QmpCommand = {
  name: 'stop',
  help: 'pause the machine (emits STOP)',
  args: {},
  run(ctx) {
    ctx.graph.runState.stop();
    return NOTHING;
  },
};

export const cont: QmpCommand = {
  name: 'cont',
  help: 'resume the machine, retrying requests stopped on an I/O error (emits RESUME)',
  args: {},
  async run(ctx) {
    await ctx.graph.runState.cont();
    return NOTHING;
  },
};

export const queryStatus: QmpCommand = {
  name: 'query-status',
  help: 'the run state: running, paused, io-error, ...',
  args: {},
  run: (ctx) => ctx.graph.runState.query(),
};
