/**
 * `--object` definitions on the command line (QEMU's user-creatable objects, src/objects/):
 * keyval (`secret,id=s0,data=x`, the first key implied as qom-type) or JSON (`{"qom-type": ...}`).
 */
import { parseKeyval } from '../config/keyval.ts';
import { createObject } from '../objects/create.ts';
import { ObjectRegistry } from '../objects/registry.ts';

/**
 * Creates each `--object` in `registry` (a fresh one by default) and returns it, with QEMU's
 * errors and hints (user_creatable_process_cmdline). Hand the registry to the BlockGraph that
 * opens the images: `new BlockGraph(undefined, registry)`.
 */
export function addObjects(
  definitions: readonly string[],
  registry: ObjectRegistry = new ObjectRegistry(),
): ObjectRegistry {
  for (const def of definitions) {
    const json = def.trimStart().startsWith('{');
    const props = json
      ? (JSON.parse(def) as Record<string, unknown>)
      : parseKeyval(def, { impliedKey: 'qom-type' });
    createObject(registry, props, { source: json ? 'qmp' : 'cli', hints: true });
  }
  return registry;
}
