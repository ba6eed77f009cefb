/** A negotiated QMP session on an in-process monitor; `execute` answers with the last message. */
import { BlockGraph } from '../../src/graph/graph.ts';
import { QmpMonitor } from '../../src/qmp/monitor.ts';

export type Message = Record<string, unknown>;

export async function connect(): Promise<(execute: string, args?: Message) => Promise<Message>> {
  const monitor = new QmpMonitor((emit) => new BlockGraph(emit));
  const lines: string[] = [];
  const session = monitor.connect((text) => lines.push(text));
  const execute = async (execute: string, args?: Message): Promise<Message> => {
    session.feed(`${JSON.stringify({ execute, ...(args && { arguments: args }) })}\n`);
    await session.idle();
    return lines
      .splice(0)
      .map((l) => JSON.parse(l) as Message)
      .at(-1)!;
  };
  await execute('qmp_capabilities');
  return execute;
}
