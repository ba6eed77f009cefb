/**
 * User-creatable objects over QMP (qapi/qom.json): object-add, object-del, and the QOM property
 * commands qom-list, qom-get, qom-set for the paths blockgraph has — the /objects container and
 * the objects in it (graph.objects). Texts are QEMU 7.2's.
 */
import { createObject } from '../../objects/create.ts';
import { notWritable, OBJECTS_PATH, propertyNotFound, type ObjectRegistry } from '../../objects/registry.ts';
import type { QmpCommand } from './types.ts';
import { NOTHING } from './types.ts';

const PATH = { path: { type: 'str', help: 'the QOM path: /objects, /objects/<id> or <id>' } } as const;
const PROPERTY = { property: { type: 'str', help: 'the property name' } } as const;

export const objectAdd: QmpCommand = {
  name: 'object-add',
  help: 'create an object (ObjectOptions: qom-type secret or throttle-group, id, properties)',
  args: 'boxed',
  run(ctx, args) {
    createObject(ctx.graph.objects, args, { source: 'qmp' });
    return NOTHING;
  },
};

export const objectDel: QmpCommand = {
  name: 'object-del',
  help: 'remove an object nothing uses',
  args: { id: { type: 'str', help: 'the object id' } },
  run(ctx, args) {
    ctx.graph.objects.delete(args.id as string);
    return NOTHING;
  },
};

export const qomList: QmpCommand = {
  name: 'qom-list',
  help: "list an object's properties (with /objects: its children)",
  args: PATH,
  run(ctx, args) {
    const registry = ctx.graph.objects;
    const object = registry.resolve(args.path as string);
    if (object) return object.properties();
    return [{ name: 'type', type: 'string' }, ...containerChildren(registry)];
  },
};

export const qomGet: QmpCommand = {
  name: 'qom-get',
  help: 'read a property of an object',
  args: { ...PATH, ...PROPERTY },
  run(ctx, args) {
    const property = args.property as string;
    const object = ctx.graph.objects.resolve(args.path as string);
    if (object) return object.get(property);
    if (property === 'type') return 'container';
    // A child property reads as the child's path (object_get_child_property).
    if (ctx.graph.objects.get(property)) return `${OBJECTS_PATH}/${property}`;
    throw propertyNotFound('container', property);
  },
};

export const qomSet: QmpCommand = {
  name: 'qom-set',
  help: 'change a property of an object (throttle-group: limits)',
  args: { ...PATH, ...PROPERTY, value: { type: 'any', help: 'the new value' } },
  run(ctx, args) {
    const property = args.property as string;
    const object = ctx.graph.objects.resolve(args.path as string);
    if (object) {
      object.set(property, args.value, 'qmp');
      return NOTHING;
    }
    if (property === 'type' || ctx.graph.objects.get(property)) throw notWritable('container', property);
    throw propertyNotFound('container', property);
  },
};

/** The container's child properties: one per object. */
function containerChildren(registry: ObjectRegistry): { name: string; type: string }[] {
  return [...registry.ids()].map((id) => ({ name: id, type: `child<${registry.get(id)!.type}>` }));
}
