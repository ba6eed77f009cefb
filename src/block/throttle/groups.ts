/**
 * The list of throttle groups (QEMU's `throttle_groups`): groups made by object-add
 * (throttle-group objects) and the anonymous ones that block_set_io_throttle and -drive
 * throttling.* make on first use and drop with their last member (throttle_group_incref/unref).
 * One list per BlockGraph (graph.objects.throttleGroups).
 */
import { genericError } from '../errors.ts';
import { REALTIME_CLOCK, type ThrottleClock } from './clock.ts';
import { ThrottleGroup, ThrottleGroupMember } from './group.ts';
import type { ThrottleConfig } from './throttle.ts';

export class ThrottleGroups {
  private readonly byName = new Map<string, ThrottleGroup>();

  constructor(readonly clock: ThrottleClock = REALTIME_CLOCK) {}

  find(name: string): ThrottleGroup | undefined {
    return this.byName.get(name);
  }

  /**
   * throttle_group_obj_complete: a group named `name` configured with `cfg`, held by its object
   * (one reference) until `release`. Refused when the name is taken or `cfg` is invalid.
   */
  create(name: string, cfg: ThrottleConfig): ThrottleGroup {
    if (this.byName.has(name)) throw genericError('A group with this name already exists');
    const group = new ThrottleGroup(name, this.clock);
    group.configure(cfg);
    group.refs = 1;
    this.byName.set(name, group);
    return group;
  }

  /** throttle_group_register_tgm: a new member of group `name`, made without limits if absent. */
  join(name: string): ThrottleGroupMember {
    let group = this.byName.get(name);
    if (!group) {
      group = new ThrottleGroup(name, this.clock);
      this.byName.set(name, group);
    }
    group.refs++;
    const member = new ThrottleGroupMember(group);
    group.members.unshift(member);
    group.tokens.read ??= member;
    group.tokens.write ??= member;
    return member;
  }

  /** throttle_group_unregister_tgm: `member` (drained) leaves; an unused group goes away. */
  leave(member: ThrottleGroupMember): void {
    member.leave();
    this.release(member.group);
  }

  /** throttle_group_unref. */
  release(group: ThrottleGroup): void {
    if (--group.refs === 0 && this.byName.get(group.name) === group) this.byName.delete(group.name);
  }
}
