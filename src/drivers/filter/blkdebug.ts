/**
 * blkdebug (QEMU block/blkdebug.c): a filter over its `image` child that fails requests on cue.
 *
 * Rules come from `inject-error` / `set-state` options and from a `config` file. A rule belongs to
 * an event (BlkdebugEvent): when the event is signalled on this node (BlockNode.debugEvent: raw
 * signals read_aio/write_aio on its file, every node signals pwritev/pwritev_zero/pwritev_done on
 * itself and flush_to_os/flush_to_disk on its primary child), the rules of that event whose
 * `state` is 0 or the current state take effect: inject-error rules become the active ones,
 * set-state rules move the state (which starts at 1). Every later request checks the active
 * rules: the first whose `iotype` matches and whose `sector` is -1 or inside the request fails it
 * with `errno` (default EIO), without passing it down. `once` removes the rule after it fired;
 * without `immediately` the error is reported after one turn of the event loop.
 *
 * `align` becomes the node's request alignment, so the BlockBackend above pads requests to it.
 * Not implemented: the suspend/break-point machinery, take/unshare-child-perms, and the
 * max-transfer/discard/write-zero limits.
 */
import type { BlockDriver, BlockDriverOps } from '../../block/driver.ts';
import { BlockIOError, errnoFromNumber, genericError } from '../../block/errors.ts';
import type { BlockNode } from '../../block/node.ts';
import type { OptionsSchema } from '../../config/schema.ts';
import { withDefaults } from '../options.ts';
import { parseBlkdebugConfig } from './blkdebug-config.ts';
import { childOrFilename } from './filename-child.ts';
import { childRefused, FILTER_CAPABILITIES } from './filter-base.ts';

/** QAPI BlkdebugEvent, in QEMU 7.2's order. */
export const BLKDEBUG_EVENTS = [
  'l1_update', 'l1_grow_alloc_table', 'l1_grow_write_table', 'l1_grow_activate_table',
  'l2_load', 'l2_update', 'l2_update_compressed', 'l2_alloc_cow_read', 'l2_alloc_write',
  'read_aio', 'read_backing_aio', 'read_compressed', 'write_aio', 'write_compressed',
  'vmstate_load', 'vmstate_save', 'cow_read', 'cow_write',
  'reftable_load', 'reftable_grow', 'reftable_update',
  'refblock_load', 'refblock_update', 'refblock_update_part', 'refblock_alloc',
  'refblock_alloc_hookup', 'refblock_alloc_write', 'refblock_alloc_write_blocks',
  'refblock_alloc_write_table', 'refblock_alloc_switch_table',
  'cluster_alloc', 'cluster_alloc_bytes', 'cluster_free', 'flush_to_os', 'flush_to_disk',
  'pwritev_rmw_head', 'pwritev_rmw_after_head', 'pwritev_rmw_tail', 'pwritev_rmw_after_tail',
  'pwritev', 'pwritev_zero', 'pwritev_done', 'empty_image_prepare', 'l1_shrink_write_table',
  'l1_shrink_free_l2_clusters', 'cor_write', 'cluster_alloc_space', 'none',
] as const; // prettier-ignore

/** QAPI BlkdebugIOType. */
const IO_TYPES = ['read', 'write', 'write-zeroes', 'discard', 'flush', 'block-status'] as const;
type IoType = (typeof IO_TYPES)[number];
/** Without `iotype` a rule applies to every request type but block-status. */
const DEFAULT_IO_TYPES: readonly IoType[] = ['read', 'write', 'write-zeroes', 'discard', 'flush'];

const EVENT = { type: 'enum', values: BLKDEBUG_EVENTS, required: true, help: 'trigger event' } as const;

const INJECT_ERROR_FIELDS: OptionsSchema = {
  event: EVENT,
  state: { type: 'int', help: 'state in which the rule applies (default: any)' },
  iotype: { type: 'enum', values: IO_TYPES, help: 'request type to fail (default: all but block-status)' },
  errno: { type: 'int', default: 5, help: 'error to return (default: EIO)' },
  sector: { type: 'int', default: -1, help: 'fail only requests covering this sector (default: any)' },
  once: { type: 'bool', default: false, help: 'fail only one request' },
  immediately: { type: 'bool', default: false, help: 'fail at once rather than after an event-loop turn' },
};

const SET_STATE_FIELDS: OptionsSchema = {
  event: EVENT,
  state: { type: 'int', help: 'state in which the rule applies (default: any)' },
  new_state: { type: 'int', required: true, help: 'the new state' },
};

const OPTIONS = {
  image: { type: 'child', role: 'image', help: 'the node requests are passed to' },
  // What `blkdebug:CONFIG:IMAGE` leaves for open, as QEMU's parse_filename does.
  'x-image': { type: 'str', help: '[internal use only, will be removed]' },
  config: { type: 'str', help: 'path to a blkdebug configuration file' },
  align: { type: 'size', help: 'required alignment in bytes (a power of two)' },
  'inject-error': {
    type: 'list',
    item: { type: 'object', fields: INJECT_ERROR_FIELDS, help: 'an error injection rule' },
    help: 'error injection rules',
  },
  'set-state': {
    type: 'list',
    item: { type: 'object', fields: SET_STATE_FIELDS, help: 'a state change rule' },
    help: 'state change rules',
  },
} as const;

interface InjectRule {
  readonly action: 'inject-error';
  readonly event: string;
  readonly state: number;
  readonly errno: number;
  /** Byte offset that must lie inside the request, or -1 for any request. */
  readonly offset: number;
  readonly once: boolean;
  readonly immediately: boolean;
  readonly iotypes: readonly IoType[];
}

interface SetStateRule {
  readonly action: 'set-state';
  readonly event: string;
  readonly state: number;
  readonly newState: number;
}

type Rule = InjectRule | SetStateRule;

/** The rule state machine of one blkdebug node. */
class Rules {
  private state = 1;
  /** Per event, newest rule first (QEMU inserts at the head). */
  private readonly byEvent = new Map<string, Rule[]>();
  private active: InjectRule[] = [];

  add(rule: Rule): void {
    const list = this.byEvent.get(rule.event) ?? [];
    list.unshift(rule);
    this.byEvent.set(rule.event, list);
  }

  /** blkdebug_debug_event: the event's rules for the current state take effect. */
  event(name: string): void {
    let newState = this.state;
    let injected = 0;
    for (const rule of this.byEvent.get(name) ?? []) {
      if (rule.state && rule.state !== this.state) continue;
      if (rule.action === 'set-state') {
        newState = rule.newState;
      } else {
        // The first inject-error rule of an event replaces the active set.
        if (injected++ === 0) this.active = [];
        this.active.unshift(rule);
      }
    }
    this.state = newState;
  }

  /** rule_check: the active rule that fails this request, consuming it if `once`. */
  match(offset: number, bytes: number, iotype: IoType): InjectRule | undefined {
    const rule = this.active.find(
      (r) =>
        (r.offset === -1 || (bytes > 0 && r.offset >= offset && r.offset < offset + bytes)) &&
        r.iotypes.includes(iotype),
    );
    if (rule?.once) {
      this.active = this.active.filter((r) => r !== rule);
      const list = this.byEvent.get(rule.event) ?? [];
      list.splice(list.indexOf(rule), 1);
    }
    return rule;
  }
}

export const blkdebugDriver = {
  name: 'blkdebug',
  kind: 'filter',
  options: OPTIONS,
  capabilities: FILTER_CAPABILITIES,
  protocols: ['blkdebug'],

  /**
   * `blkdebug:[CONFIG]:IMAGE` (blkdebug_parse_filename); IMAGE is opened as a protocol node, so it
   * may itself be `nbd:...`, a URL or, in the worker, a registered Blob's name.
   */
  parseFilename(filename: string): Record<string, unknown> {
    const rest = filename.startsWith('blkdebug:') ? filename.slice('blkdebug:'.length) : filename;
    const colon = rest.indexOf(':');
    if (colon < 0) throw genericError('blkdebug requires both config file and image path');
    const options: Record<string, unknown> = { 'x-image': rest.slice(colon + 1) };
    if (colon > 0) options.config = rest.slice(0, colon);
    return options;
  },

  async open(ctx): Promise<BlockDriverOps> {
    const image = await childOrFilename(ctx, 'image', 'image', ctx.options['x-image'], false);
    const opts = withDefaults(OPTIONS, ctx.options);
    const rules = await loadRules(opts);
    const align = opts.align as number | undefined;
    checkAlign(align);
    return { ...filterOps(image, rules), requestAlignment: align || 1 };
  },
} as const satisfies BlockDriver;

/** Requests pass to `image` (replaceable by a live graph change) unless an active rule fails them first. */
function filterOps(image: BlockNode, rules: Rules): BlockDriverOps {
  const check = async (offset: number, bytes: number, iotype: IoType): Promise<void> => {
    const rule = rules.match(offset, bytes, iotype);
    if (!rule || rule.errno === 0) return;
    // QEMU reschedules the coroutine before failing unless `immediately`.
    if (!rule.immediately) await new Promise((resolve) => setTimeout(resolve, 0));
    // Errnos outside blockgraph's Errno set fail as EIO.
    throw new BlockIOError(errnoFromNumber(rule.errno) ?? 'EIO');
  };
  return {
    length: () => image.length(),
    read: async (offset, dst) => {
      await check(offset, dst.length, 'read');
      await image.read(offset, dst);
    },
    write: async (offset, src, flags) => {
      await check(offset, src.length, 'write');
      await image.write(offset, src, flags);
    },
    writeZeroes: async (offset, bytes, opts) => {
      await check(offset, bytes, 'write-zeroes');
      await image.writeZeroes(offset, bytes, opts);
    },
    discard: async (offset, bytes) => {
      await check(offset, bytes, 'discard');
      await image.discard(offset, bytes);
    },
    flush: async () => {
      await check(0, 0, 'flush');
      await image.flush();
    },
    blockStatus: async (offset, bytes) => {
      await check(offset, bytes, 'block-status');
      return image.blockStatus(offset, bytes);
    },
    truncate: (bytes) => image.truncate(bytes),
    debugEvent: (event) => rules.event(event),
    replaceChild: (name, node) => {
      if (name !== 'image' || !node) throw childRefused(name, 'a blkdebug node');
      image = node;
    },
  };
}

/** Rules from the config file, then from the options; inject-error rules before set-state ones. */
async function loadRules(opts: Record<string, unknown>): Promise<Rules> {
  const inject: Record<string, unknown>[] = [];
  const setState: Record<string, unknown>[] = [];
  if (typeof opts.config === 'string') {
    for (const section of parseBlkdebugConfig(await readConfig(opts.config))) {
      (section.group === 'inject-error' ? inject : setState).push(section.values);
    }
  }
  inject.push(...((opts['inject-error'] ?? []) as Record<string, unknown>[]));
  setState.push(...((opts['set-state'] ?? []) as Record<string, unknown>[]));
  const rules = new Rules();
  for (const item of inject) rules.add(injectRule(item));
  for (const item of setState) rules.add(setStateRule(item));
  return rules;
}

async function readConfig(path: string): Promise<string> {
  const fs = await import('node:fs/promises');
  try {
    return await fs.readFile(path, 'utf8');
  } catch (err) {
    const reason = (err as { code?: string }).code === 'ENOENT' ? 'No such file or directory' : String(err);
    throw genericError(`Could not read blkdebug config file: ${reason}`);
  }
}

function injectRule(item: Record<string, unknown>): InjectRule {
  const o = withDefaults(INJECT_ERROR_FIELDS, item);
  const sector = o.sector as number;
  return {
    action: 'inject-error',
    event: eventName(o.event),
    state: (o.state as number | undefined) ?? 0,
    errno: o.errno as number,
    offset: sector === -1 ? -1 : sector * 512,
    once: o.once === true,
    immediately: o.immediately === true,
    iotypes: o.iotype === undefined ? DEFAULT_IO_TYPES : [enumValue(IO_TYPES, o.iotype)],
  };
}

function setStateRule(item: Record<string, unknown>): SetStateRule {
  return {
    action: 'set-state',
    event: eventName(item.event),
    state: (item.state as number | undefined) ?? 0,
    newState: (item.new_state as number | undefined) ?? 0,
  };
}

function eventName(value: unknown): string {
  if (value === undefined) throw genericError('Missing event name for rule');
  return enumValue(BLKDEBUG_EVENTS, value);
}

/** qapi_enum_parse with its error text. */
function enumValue<T extends string>(values: readonly T[], value: unknown): T {
  if (!values.includes(value as T)) throw genericError(`invalid parameter value: ${String(value)}`);
  return value as T;
}

/** 0 means "no constraint"; anything else must be a power of two below INT_MAX. */
function checkAlign(align: number | undefined): void {
  if (!align) return;
  if (align >= 0x7fffffff || (align & (align - 1)) !== 0) {
    throw genericError(`Cannot meet constraints with align ${align}`);
  }
}
