/**
 * Throttle groups (QEMU's block/throttle-groups.c): several members — throttle filter nodes,
 * throttled BlockBackends — share one ThrottleState, so their requests together keep the limits.
 * Per direction only one timer in the group is armed at a time; when it fires, the member
 * holding the token runs its next request, and the token then passes round-robin to the next
 * member with requests waiting (next_throttle_token), so a busy member cannot starve the others.
 *
 * A member being drained has its limits disabled: its queued requests run at once, one after
 * the other (throttle_group_restart_tgm), and new ones are not throttled until the drain ends.
 */
import { genericError } from '../errors.ts';
import type { ThrottleClock } from './clock.ts';
import {
  applyLimits,
  checkConfig,
  type Direction,
  type ThrottleConfig,
  type ThrottleLimits,
  ThrottleState,
} from './throttle.ts';

const DIRECTIONS: readonly Direction[] = ['read', 'write'];

export class ThrottleGroup {
  readonly state = new ThrottleState();
  /** Newest first, as QLIST_INSERT_HEAD leaves them; the round-robin order. */
  readonly members: ThrottleGroupMember[] = [];
  /** Per direction, the member whose turn it is. */
  readonly tokens: Record<Direction, ThrottleGroupMember | undefined> = { read: undefined, write: undefined };
  /** Per direction, whether some member's timer is armed. */
  readonly anyTimerArmed: Record<Direction, boolean> = { read: false, write: false };
  /** Members plus the QOM object holding the group, if any; at 0 the group goes away. */
  refs = 0;

  constructor(
    readonly name: string,
    readonly clock: ThrottleClock,
  ) {}

  config(): ThrottleConfig {
    return this.state.config();
  }

  /** throttle_config on the group's state: `cfg` is checked first (throttle_is_valid). */
  configure(cfg: ThrottleConfig): void {
    checkConfig(cfg);
    this.state.configure(cfg, this.clock.now());
  }

  /**
   * throttle_group_set_limits (qom-set of `limits`): the members `limits` has replace the current
   * ones; the result must be valid or nothing changes. Waiting requests keep their timers.
   */
  setLimits(limits: ThrottleLimits): void {
    const cfg = this.state.config();
    applyLimits(limits, cfg);
    this.state.configure(cfg, this.clock.now());
  }

  /** throttle_group_next_tgm: the member after `tgm`, wrapping around. */
  next(tgm: ThrottleGroupMember): ThrottleGroupMember {
    const i = this.members.indexOf(tgm);
    return this.members[(i + 1) % this.members.length]!;
  }
}

/** One user of a group (QEMU's ThrottleGroupMember). */
export class ThrottleGroupMember {
  /** Requests waiting per direction, counted before they queue. */
  private readonly pending: Record<Direction, number> = { read: 0, write: 0 };
  private readonly queues: Record<Direction, (() => void)[]> = { read: [], write: [] };
  /** Cancels of this member's armed timers. */
  private readonly timers: Record<Direction, (() => void) | undefined> = {
    read: undefined,
    write: undefined,
  };
  private limitsDisabled = 0;

  constructor(readonly group: ThrottleGroup) {}

  /**
   * throttle_group_co_io_limits_intercept: resolves when a request of `bytes` in `direction` may
   * start, and accounts it. Requests of one member and direction start in call order.
   */
  async intercept(bytes: number, direction: Direction): Promise<void> {
    const token = this.nextToken(direction);
    const mustWait = token.scheduleTimer(direction);
    if (mustWait || this.pending[direction] > 0) {
      this.pending[direction]++;
      await new Promise<void>((resolve) => this.queues[direction].push(resolve));
      this.pending[direction]--;
    }
    this.group.state.account(direction, bytes);
    this.scheduleNextRequest(direction);
  }

  /**
   * bdrv_drained_begin on the member: queued requests run now and new ones are not throttled,
   * until the matching enableLimits.
   */
  disableLimits(): void {
    if (this.limitsDisabled++ === 0) this.restart();
  }

  enableLimits(): void {
    this.limitsDisabled--;
  }

  /** throttle_group_config: new limits for the whole group; this member's queue restarts. */
  configure(cfg: ThrottleConfig): void {
    this.group.configure(cfg);
    this.restart();
  }

  hasPending(direction: Direction): boolean {
    return this.pending[direction] > 0;
  }

  /** next_throttle_token: the member with waiting requests whose turn is next, else this one. */
  private nextToken(direction: Direction): ThrottleGroupMember {
    // A member being drained must not wait for the others' throttled requests.
    if (this.pending[direction] > 0 && this.limitsDisabled > 0) return this;
    const start = this.group.tokens[direction] ?? this;
    let token = this.group.next(start);
    while (token !== start && !token.hasPending(direction)) token = this.group.next(token);
    return token === start && !token.hasPending(direction) ? this : token;
  }

  /**
   * throttle_group_schedule_timer: whether the next request of this member must wait; arms this
   * member's timer and takes the token if so, unless some timer of the group is armed already.
   */
  private scheduleTimer(direction: Direction): boolean {
    if (this.limitsDisabled > 0) return false;
    const group = this.group;
    if (group.anyTimerArmed[direction]) return true;
    const now = group.clock.now();
    const wait = group.state.computeWait(direction, now);
    if (!wait) return false;
    if (!this.timers[direction]) this.armTimer(direction, now + wait);
    group.tokens[direction] = this;
    group.anyTimerArmed[direction] = true;
    return true;
  }

  /** schedule_next_request: lets the next waiting request of the group go, or arms its timer. */
  private scheduleNextRequest(direction: Direction): void {
    const group = this.group;
    const token = this.nextToken(direction);
    if (!token.hasPending(direction)) return;
    if (token.scheduleTimer(direction)) return;
    // Requests of this member go first; another member's run from a timer firing at once.
    if (this.wakeOne(direction)) {
      group.tokens[direction] = this;
      return;
    }
    token.armTimer(direction, group.clock.now());
    group.anyTimerArmed[direction] = true;
    group.tokens[direction] = token;
  }

  private armTimer(direction: Direction, atNs: number): void {
    this.timers[direction] = this.group.clock.setTimer(atNs, () => this.timerFired(direction));
  }

  /** timer_cb: the group's timer is free again; this member's next request runs. */
  private timerFired(direction: Direction): void {
    this.timers[direction] = undefined;
    this.group.anyTimerArmed[direction] = false;
    this.restartQueue(direction);
  }

  /** throttle_group_restart_queue_entry: wakes one request, or passes the turn on. */
  private restartQueue(direction: Direction): void {
    if (!this.wakeOne(direction)) this.scheduleNextRequest(direction);
  }

  private wakeOne(direction: Direction): boolean {
    const wake = this.queues[direction].shift();
    wake?.();
    return wake !== undefined;
  }

  /** throttle_group_restart_tgm: fires this member's armed timers now, or restarts its queues. */
  private restart(): void {
    for (const direction of DIRECTIONS) {
      const cancel = this.timers[direction];
      if (cancel) {
        cancel();
        this.timerFired(direction);
      } else {
        this.restartQueue(direction);
      }
    }
  }

  /**
   * Leaves the group (throttle_group_unregister_tgm); the caller has drained the member. A timer
   * still armed is given up and the turn passed on, as throttle_group_detach_aio_context does.
   */
  leave(): void {
    const group = this.group;
    for (const direction of DIRECTIONS) {
      if (this.pending[direction] > 0) throw genericError('throttle group member left with requests waiting');
      const cancel = this.timers[direction];
      if (cancel) {
        cancel();
        this.timers[direction] = undefined;
        group.anyTimerArmed[direction] = false;
      }
      if (group.tokens[direction] === this) {
        const next = group.next(this);
        group.tokens[direction] = next === this ? undefined : next;
      }
    }
    group.members.splice(group.members.indexOf(this), 1);
    for (const direction of DIRECTIONS) {
      const token = group.tokens[direction];
      if (token?.hasPending(direction)) token.scheduleNextRequest(direction);
    }
  }
}
