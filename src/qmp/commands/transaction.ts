/**
 * transaction (qapi/transaction.json; blockdev.c qmp_transaction): its actions are prepared in
 * order with every drive drained; if one fails, those prepared are aborted in reverse order and
 * its error is the command's; otherwise all are committed. A QMP command that is also an action
 * (blockdev-snapshot, ...) runs as a transaction of one (blockdev_do_action).
 *
 * Actions are data: the command table (index.ts) passes the list to `transaction`, so another
 * module adds an action by exporting a TransactionAction and adding it there.
 */
import { genericError } from '../../block/errors.ts';
import { checkArgs, type ArgsSchema } from '../args.ts';
import type { QmpCommand, QmpContext } from './types.ts';
import { NOTHING } from './types.ts';

/** What a prepared action leaves to do (QEMU's TransactionActionDrv commit/abort). */
export interface PreparedAction {
  /** Makes the action final; failures are ignored, as QEMU's commit cannot fail. */
  commit?(): Promise<void>;
  /** Undoes the prepared action. */
  abort?(): Promise<void>;
}

export interface TransactionAction {
  /** The action's `type` in the transaction (the QMP command of the same name, if any). */
  readonly type: string;
  readonly help: string;
  /** The members of its `data`. */
  readonly args: ArgsSchema;
  /** Checks and does the undoable part; throws QEMU's error, having changed nothing. */
  prepare(ctx: QmpContext, data: Record<string, unknown>): Promise<PreparedAction>;
}

/** The `abort` action: fails the transaction (for testing rollback). */
export const abortAction: TransactionAction = {
  type: 'abort',
  help: 'fail the transaction',
  args: {},
  prepare: () => Promise.reject(genericError('Transaction aborted using Abort action')),
};

/** Runs `actions` (with checked data) as one transaction, every drive drained throughout. */
export async function runTransaction(
  ctx: QmpContext,
  actions: readonly { action: TransactionAction; data: Record<string, unknown> }[],
): Promise<void> {
  const graph = ctx.graph;
  await graph.drained([...graph.nodes.values()], async () => {
    const prepared: PreparedAction[] = [];
    try {
      for (const { action, data } of actions) prepared.push(await action.prepare(ctx, data));
    } catch (err) {
      for (const p of prepared.reverse()) await p.abort?.().catch(() => {});
      throw err;
    }
    for (const p of prepared) await p.commit?.().catch(() => {});
  });
}

/** The command table's `transaction`, offering `actions`. */
export function transaction(actions: readonly TransactionAction[]): QmpCommand {
  const byType = new Map(actions.map((a) => [a.type, a]));
  return {
    name: 'transaction',
    help: `run actions atomically: ${actions.map((a) => a.type).join(', ')}`,
    args: {
      actions: { type: { list: 'any' }, help: 'the actions: { type, data }' },
      properties: { type: 'any', optional: true, help: 'completion-mode (individual only)' },
    },
    async run(ctx, args) {
      const list = (args.actions as Record<string, unknown>[]).map((item) => {
        const { type, data } = checkArgs(ITEM_ARGS, item) as { type: string; data: unknown };
        const action = byType.get(type);
        if (!action) throw genericError(`Parameter 'type' does not accept value '${type}'`);
        return { action, data: checkArgs(action.args, (data ?? {}) as Record<string, unknown>) };
      });
      await runTransaction(ctx, list);
      return NOTHING;
    },
  };
}

const ITEM_ARGS: ArgsSchema = {
  type: { type: 'str', help: 'the action' },
  data: { type: 'any', help: "the action's arguments" },
};

/** A QMP command that runs `action` alone as a transaction (blockdev_do_action). */
export function actionCommand(action: TransactionAction): QmpCommand {
  return {
    name: action.type,
    help: action.help,
    args: action.args,
    async run(ctx, args) {
      await runTransaction(ctx, [{ action, data: args }]);
      return NOTHING;
    },
  };
}
