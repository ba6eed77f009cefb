/**
 * blockdev-reopen (qapi/block-core.json, QEMU 7.2 shape: `options` is a list of full
 * BlockdevOptions, one per node) and x-blockdev-replace, blockgraph's own command for what QEMU
 * 7.2 cannot do over QMP: pointing a drive's root, or one child of a node, at another node — how
 * a filter is inserted above a running guest's disk and removed again (DESIGN.md §4).
 */
import { genericError } from '../../block/errors.ts';
import { reopen } from '../../graph/reopen.ts';
import type { QmpCommand } from './types.ts';
import { NOTHING } from './types.ts';

export const blockdevReopen: QmpCommand = {
  name: 'blockdev-reopen',
  help: 'reopen nodes with new options (read-only, cache, driver options; `file`/`backing` by node-name)',
  args: { options: { type: { list: 'any' }, help: 'the full BlockdevOptions of each node to reopen' } },
  async run(ctx, args) {
    await reopen(ctx.graph, args.options as Record<string, unknown>[]);
    return NOTHING;
  },
};

export const xBlockdevReplace: QmpCommand = {
  name: 'x-blockdev-replace',
  help: "point a drive's root (parent: drive name) or a node's child (parent: node-name) at `new-child`",
  args: {
    parent: { type: 'str', help: 'a drive (BlockBackend) name, or the node-name of a parent node' },
    child: {
      type: 'str',
      optional: true,
      help: "with a node parent: the child to replace (default 'file'); not allowed with a drive",
    },
    'new-child': { type: 'str', help: 'the node-name of the node to use from now on' },
  },
  async run(ctx, args) {
    const graph = ctx.graph;
    const name = args.parent as string;
    const child = args.child as string | undefined;
    const to = graph.lookup(args['new-child'] as string);
    const backend = graph.backends.get(name);
    if (backend) {
      if (child !== undefined) throw genericError(`Drive '${name}' has no child named '${child}'`);
      const root = backend.root;
      if (!root) throw genericError(`Device '${name}' has no medium`);
      const edge = root.parents.find((p) => p.parent === backend)!.edge;
      await graph.applyChanges([{ op: 'move-edge', edge, to }]);
      return NOTHING;
    }
    const parent = graph.lookup(name);
    const childName = child ?? 'file';
    if (!parent.child(childName)) throw genericError(`Node '${name}' has no child named '${childName}'`);
    await graph.setChild(parent, childName, to);
    return NOTHING;
  },
};
