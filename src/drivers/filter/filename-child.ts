/**
 * Children named by a legacy filename (`blkdebug:CFG:IMAGE`, `blkverify:RAW:TEST`): the driver's
 * parseFilename leaves the path in an option (QEMU's `x-image` / `x-raw`), and open() opens it as
 * bdrv_open_child does with a filename.
 */
import type { OpenContext } from '../../block/driver.ts';
import { genericError } from '../../block/errors.ts';
import type { BlockNode } from '../../block/node.ts';
import type { ChildRole } from '../../block/types.ts';

/**
 * Child `name` of the node being opened: the one given in the options, else the one `filename`
 * names — a protocol node, or with `probe` a node of the probed format over it. Throws QEMU's
 * text when there is neither.
 */
export async function childOrFilename(
  ctx: OpenContext,
  name: string,
  role: ChildRole,
  filename: unknown,
  probe: boolean,
): Promise<BlockNode> {
  const given = ctx.children.get(name);
  if (given) return given;
  if (typeof filename !== 'string' || !ctx.openChild) {
    throw genericError(`A block device must be specified for "${name}"`);
  }
  // Imported here: config/filename.ts imports the driver registry, which imports the drivers.
  const { protocolOptions } = await import('../../config/filename.ts');
  const protocol = protocolOptions(filename);
  return ctx.openChild(probe ? { file: protocol } : protocol, name, role);
}
