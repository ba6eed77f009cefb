/** Monitor control commands (qapi/control.json): capabilities, the command list, quit. */
import type { QmpCommand } from './types.ts';
import { NOTHING } from './types.ts';

export const qmpCapabilities: QmpCommand = {
  name: 'qmp_capabilities',
  help: 'leave capabilities negotiation mode, enabling optional capabilities',
  args: { enable: { type: { list: { enum: ['oob'] } }, optional: true, help: 'capabilities to enable' } },
  run(ctx, args) {
    ctx.session.negotiate((args.enable as string[] | undefined) ?? []);
    return NOTHING;
  },
};

/** query-commands answers from the table it is given, so it always lists what is really there. */
export function queryCommands(table: () => Iterable<QmpCommand>): QmpCommand {
  return {
    name: 'query-commands',
    help: 'list the commands this monitor accepts',
    args: {},
    run: () => [...table()].map((c) => ({ name: c.name })),
  };
}

export const quit: QmpCommand = {
  name: 'quit',
  help: 'shut the server down after answering',
  args: {},
  run(ctx) {
    // QEMU sends SHUTDOWN (host-qmp-quit) before the return, then exits (qmp_quit).
    ctx.graph.emit('SHUTDOWN', { guest: false, reason: 'host-qmp-quit' });
    ctx.quit();
    return NOTHING;
  },
};
