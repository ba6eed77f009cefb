/** The shape of one QMP command in the table (QEMU's QmpCommand plus its QAPI argument schema). */
import type { BlockGraph } from '../../graph/graph.ts';
import type { ArgsSchema } from '../args.ts';

/** What a command runs against. */
export interface QmpContext {
  readonly graph: BlockGraph;
  /** The connection the command came in on (capabilities are negotiated per connection). */
  readonly session: { negotiate(enable: readonly string[]): void };
  /** Ends the server after the current response has been sent (`quit`). */
  quit(): void;
}

export interface QmpCommand {
  readonly name: string;
  readonly help: string;
  /**
   * The arguments' schema, checked before `run`; 'boxed' hands the whole arguments object to
   * `run` unchecked, for commands whose argument is one big union validated elsewhere
   * (blockdev-add's BlockdevOptions, validated by the driver schemas).
   */
  readonly args: ArgsSchema | 'boxed';
  run(ctx: QmpContext, args: Record<string, unknown>): unknown;
}

/** An empty return value: commands without one answer `{"return": {}}`. */
export const NOTHING = Object.freeze({});
