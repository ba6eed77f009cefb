/**
 * The `throttle-group` object (QEMU's block/throttle-groups.c, ThrottleGroupProperties): a named
 * set of limits that throttle nodes (`throttle-group=<id>`) share. Its limits are set in one go,
 * as the `limits` struct (QAPI ThrottleLimits) at creation or later with qom-set; the `x-`
 * properties (one per limit) may be given only at creation.
 */
import type { ThrottleGroup } from '../block/throttle/group.ts';
import {
  applyLimits,
  configToLimits,
  LIMIT_NAMES,
  limitTarget,
  newConfig,
  type LimitName,
  type ThrottleConfig,
  type ThrottleLimits,
} from '../block/throttle/throttle.ts';
import { genericError } from '../block/errors.ts';
import type { OptionSpec, OptionsSchema } from '../config/schema.ts';
import { validateOptions, type OptionSource } from '../config/validate.ts';
import {
  notWritable,
  ObjectRegistry,
  propertyNotFound,
  type PropertyInfo,
  type UserObject,
} from './registry.ts';

const UINT_MAX = 4_294_967_295;

const LIMIT_FIELDS: OptionsSchema = Object.fromEntries(
  LIMIT_NAMES.map((name): [string, OptionSpec] => [name, { type: 'int', help: `ThrottleLimits ${name}` }]),
);
const LIMITS_SPEC: OptionSpec = { type: 'object', fields: LIMIT_FIELDS, help: 'the group limits' };
/** ThrottleGroupProperties besides qom-type and id. */
const PROPERTIES: OptionsSchema = {
  limits: LIMITS_SPEC,
  ...Object.fromEntries(
    LIMIT_NAMES.map((name): [string, OptionSpec] => [`x-${name}`, { type: 'int', help: `limit ${name}` }]),
  ),
};

export class ThrottleGroupObject implements UserObject {
  readonly type = 'throttle-group';

  constructor(
    readonly id: string,
    readonly group: ThrottleGroup,
    private readonly registry: ObjectRegistry,
  ) {}

  properties(): readonly PropertyInfo[] {
    return [
      { name: 'type', type: 'string' },
      { name: 'limits', type: 'ThrottleLimits' },
      ...LIMIT_NAMES.map((name) => ({ name: `x-${name}`, type: 'int' })),
    ];
  }

  get(property: string): unknown {
    if (property === 'type') return this.type;
    const limits = configToLimits(this.group.config());
    if (property === 'limits') return limits;
    const name = property.slice(2) as LimitName;
    if (property.startsWith('x-') && LIMIT_NAMES.includes(name)) return limits[name];
    throw propertyNotFound(this.type, property);
  }

  /** Only `limits` changes after creation (throttle_group_set refuses the single limits). */
  set(property: string, value: unknown, source: OptionSource): void {
    if (property === 'type') throw notWritable(this.type, property);
    if (property === 'limits') return this.group.setLimits(parseLimits(value, source));
    if (property.startsWith('x-') && LIMIT_NAMES.includes(property.slice(2) as LimitName)) {
      throw genericError('Property cannot be set after initialization');
    }
    throw propertyNotFound(this.type, property);
  }

  /** throttle_group_can_be_deleted: only the object holds the group. */
  canBeDeleted(): boolean {
    return this.group.refs === 1;
  }

  finalize(): void {
    this.registry.throttleGroups.release(this.group);
  }
}

/**
 * object-add of a throttle-group: the properties are typed as `source` has them, set (limits
 * first, then the x- ones), and the group is completed (throttle_group_obj_complete).
 */
export function createThrottleGroup(
  registry: ObjectRegistry,
  id: string,
  props: Readonly<Record<string, unknown>>,
  source: OptionSource,
): ThrottleGroupObject {
  const valid = validateOptions(PROPERTIES, props, { source, path: '', driverName: 'throttle-group' });
  const cfg = newConfig();
  if (valid.limits !== undefined) applyLimits(valid.limits as ThrottleLimits, cfg);
  for (const name of LIMIT_NAMES) {
    const value = valid[`x-${name}`];
    if (value !== undefined) setSingleLimit(cfg, name, value as number);
  }
  if (registry.get(id)) {
    throw genericError(`attempt to add duplicate property '${id}' to object (type 'container')`);
  }
  return new ThrottleGroupObject(id, registry.throttleGroups.create(id, cfg), registry);
}

/** throttle_group_set before initialization: one limit, checked on its own. */
function setSingleLimit(cfg: ThrottleConfig, name: LimitName, value: number): void {
  if (value < 0) throw genericError('Property values cannot be negative');
  const target = limitTarget(name);
  if (!target) {
    cfg.opSize = value;
    return;
  }
  if (target.field === 'burstLength' && value > UINT_MAX) {
    // QEMU's format string lacks the space between "the" and "range".
    throw genericError(`x-${name} value must be in therange [0, ${UINT_MAX}]`);
  }
  cfg.buckets[target.bucket][target.field] = value;
}

/** A ThrottleLimits value typed and checked as QAPI checks the `limits` property. */
export function parseLimits(value: unknown, source: OptionSource): ThrottleLimits {
  const valid = validateOptions(
    { limits: LIMITS_SPEC },
    { limits: value },
    {
      source,
      path: '',
      driverName: 'throttle-group',
    },
  );
  return (valid.limits ?? {}) as ThrottleLimits;
}
