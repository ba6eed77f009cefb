/**
 * object-add and --object (qom/object_interfaces.c user_creatable_add_qapi): QAPI ObjectOptions,
 * a union on `qom-type`, of the types blockgraph has. Other types are refused with QEMU's text
 * for a value outside the union's enum.
 */
import { genericError } from '../block/errors.ts';
import type { OptionSource } from '../config/validate.ts';
import type { ObjectRegistry, UserObject } from './registry.ts';
import { createSecret } from './secret.ts';
import { createThrottleGroup } from './throttle-group.ts';

const CREATORS: Readonly<
  Record<
    string,
    (registry: ObjectRegistry, id: string, props: Record<string, unknown>, source: OptionSource) => UserObject
  >
> = {
  secret: (_registry, id, props) => createSecret(id, props),
  'throttle-group': createThrottleGroup,
};

/** QEMU's id_wellformed(); unlike node-names, object ids have no length limit. */
const IDENTIFIER = /^[A-Za-z][A-Za-z0-9_.-]*$/;
const IDENTIFIER_HINT = "\nIdentifiers consist of letters, digits, '-', '.', '_', starting with a letter.";

export interface CreateOptions {
  /** How the values are typed: QMP/JSON ('qmp') or keyval strings ('cli'). */
  readonly source: OptionSource;
  /** Append QEMU's hints to errors, as the command line prints them and QMP does not. */
  readonly hints?: boolean;
}

/** Creates the object `props` describe and adds it to `registry`; QEMU's errors otherwise. */
export function createObject(
  registry: ObjectRegistry,
  props: Readonly<Record<string, unknown>>,
  opts: CreateOptions,
): UserObject {
  const { 'qom-type': type, id, ...rest } = props;
  if (type === undefined) throw genericError("Parameter 'qom-type' is missing");
  const create = typeof type === 'string' ? CREATORS[type] : undefined;
  if (!create) throw genericError(`Parameter 'qom-type' does not accept value '${String(type)}'`);
  if (id === undefined) throw genericError("Parameter 'id' is missing");
  if (typeof id !== 'string') throw genericError("Invalid parameter type for 'id', expected: string");
  if (!IDENTIFIER.test(id)) {
    throw genericError(`Parameter 'id' expects an identifier${opts.hints ? IDENTIFIER_HINT : ''}`);
  }
  const object = create(registry, id, rest, opts.source);
  registry.add(object);
  return object;
}
