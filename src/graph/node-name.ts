/** Node-name rules, as QEMU's id_wellformed(): a letter first, then letters, digits, '-', '.', '_'. */
import { genericError } from '../block/errors.ts';

/** QEMU's id_wellformed(): also the rule for device ids (BlockBackend names). */
export const WELL_FORMED = /^[A-Za-z][A-Za-z0-9_.-]*$/;
/** QEMU rejects node-names of 32 bytes or more (BlockDriverState.node_name[32]). */
export const NODE_NAME_MAX = 31;

export function checkNodeName(name: string): void {
  if (!WELL_FORMED.test(name)) throw genericError("Invalid node-name: '" + name + "'");
  if (name.length > NODE_NAME_MAX) throw genericError('Node name too long');
}

/**
 * Auto-generated names for nodes the user did not name, as QEMU's id_generate (util/id.c):
 * '#block', a counter, then two random digits, so that nobody relies on the exact name.
 */
export class NodeNameAllocator {
  private next = 0;
  allocate(taken: (name: string) => boolean): string {
    let name: string;
    do name = `#block${this.next++}${String(Math.floor(Math.random() * 100)).padStart(2, '0')}`;
    while (taken(name));
    return name;
  }
}
