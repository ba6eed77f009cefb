/**
 * QEMU's user-creatable objects (qom/object_interfaces.c) as blockgraph needs them: `secret` and
 * `throttle-group`, kept by id in one registry per BlockGraph (QEMU's /objects container; per
 * graph rather than per process so that graphs in one process stay apart). Drivers reach it
 * through OpenContext.objects; QMP's object-add/object-del/qom-* and the CLI's --object fill it.
 */
import { genericError, QmpError } from '../block/errors.ts';
import type { ThrottleClock } from '../block/throttle/clock.ts';
import { ThrottleGroups } from '../block/throttle/groups.ts';
import type { OptionSource } from '../config/validate.ts';

/** One property as qom-list describes it (QAPI ObjectPropertyInfo). */
export interface PropertyInfo {
  readonly name: string;
  readonly type: string;
}

/** An object in the registry. Property errors use QEMU's texts. */
export interface UserObject {
  readonly id: string;
  /** The QOM type name (`qom-type`). */
  readonly type: string;
  properties(): readonly PropertyInfo[];
  /** qom-get. */
  get(property: string): unknown;
  /** qom-set; `source` says how `value` is typed (QMP JSON or command-line strings). */
  set(property: string, value: unknown, source: OptionSource): void;
  /** user_creatable_can_be_deleted: false while something uses the object. */
  canBeDeleted(): boolean;
  /** The object was removed from the registry (its finalize). */
  finalize(): void;
}

/** The QOM path of the objects container. */
export const OBJECTS_PATH = '/objects';

export class ObjectRegistry {
  private readonly objects = new Map<string, UserObject>();
  readonly throttleGroups: ThrottleGroups;

  /** `clock` drives the throttle groups (tests inject their own). */
  constructor(opts: { clock?: ThrottleClock } = {}) {
    this.throttleGroups = new ThrottleGroups(opts.clock);
  }

  get(id: string): UserObject | undefined {
    return this.objects.get(id);
  }

  ids(): IterableIterator<string> {
    return this.objects.keys();
  }

  /** object_property_try_add_child on /objects: refused when the id is taken. */
  add(object: UserObject): void {
    if (this.objects.has(object.id)) {
      throw genericError(`attempt to add duplicate property '${object.id}' to object (type 'container')`);
    }
    this.objects.set(object.id, object);
  }

  /** user_creatable_del (object-del). */
  delete(id: string): void {
    const object = this.objects.get(id);
    if (!object) throw genericError(`object '${id}' not found`);
    if (!object.canBeDeleted()) throw genericError(`object '${id}' is in use, can not be deleted`);
    this.objects.delete(id);
    object.finalize();
  }

  /**
   * object_resolve_path for the paths blockgraph has: `/objects`, `/objects/<id>`, and a partial
   * path `<id>` (unique here, as partial paths must be). undefined stands for /objects itself.
   */
  resolve(path: string): UserObject | undefined {
    if (path === OBJECTS_PATH) return undefined;
    const id = path.startsWith(`${OBJECTS_PATH}/`) ? path.slice(OBJECTS_PATH.length + 1) : path;
    const object = id.includes('/') ? undefined : this.objects.get(id);
    if (!object) throw new QmpError('DeviceNotFound', `Device '${path}' not found`);
    return object;
  }
}

/** QEMU's error for a property an object does not have. */
export function propertyNotFound(type: string, property: string): QmpError {
  return genericError(`Property '${type}.${property}' not found`);
}

export function notWritable(type: string, property: string): QmpError {
  return genericError(`Property '${type}.${property}' is not writable`);
}
