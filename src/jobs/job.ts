/**
 * Job: QEMU's job.c for blockgraph. A job runs `run()` in the background; the QMP verbs
 * (pause, resume, cancel, complete, finalize, dismiss) act on it according to status.ts, and
 * every status change is a JOB_STATUS_CHANGE event. The life of a job:
 *
 *   created → running ⇄ paused            (user pauses and drain pauses, counted together)
 *             running → ready ⇄ standby    (jobs that wait for job-complete: mirror, active commit)
 *   run() returned:  waiting → pending → [job-finalize unless auto-finalize] → prepare() →
 *                    concluded → [job-dismiss unless auto-dismiss] → null
 *   failed/cancelled: aborting → abort() → concluded → null
 *
 * Subclasses implement `run` and, where they change the graph, `prepare` (on success, may still
 * fail) and `abort`; `clean` runs in every case. `run` calls `pausePoint()` (or `sleep()`)
 * between units of work: that is where the job pauses and where a forced cancel ends it.
 */
import { genericError } from '../block/errors.ts';
import type { EventSink } from '../block/driver.ts';
import { checkTransition, checkVerb, type JobStatus } from './status.ts';

export interface JobOptions {
  readonly id: string;
  /** Run prepare and conclude without waiting for job-finalize (default true). */
  readonly autoFinalize?: boolean;
  /** Disappear once concluded, without waiting for job-dismiss (default true). */
  readonly autoDismiss?: boolean;
}

/** Thrown inside `run` by pausePoint/sleep when the job was cancelled with force. */
export class JobCancelled extends Error {
  constructor() {
    super('Operation canceled');
  }
}

/** What a job needs from the registry it lives in. */
export interface JobHost {
  readonly emit: EventSink;
  /** The job reached `null`: forget it. */
  remove(job: Job): void;
}

export abstract class Job {
  /** QAPI JobType: 'stream', 'commit', 'mirror', 'backup', 'create', 'amend', ... */
  abstract readonly type: string;
  readonly id: string;
  readonly autoFinalize: boolean;
  readonly autoDismiss: boolean;
  private state: JobStatus = 'undefined';
  /** Progress as query-jobs reports it; `total` may grow while the job runs (mirror). */
  current = 0;
  total = 0;
  /** The failure, once the job failed (query-jobs `error`). */
  error: string | undefined;
  /** job->pause_count: user pauses (at most one) plus drain pauses. */
  private pauseCount = 0;
  private userPaused = false;
  /** job->cancelled (a cancel was requested) and job->force_cancel. */
  private cancelled = false;
  private forceCancel = false;
  /** Wakes the job from a pause or sleep (job_enter). */
  private wake: (() => void) | null = null;
  /**
   * job->busy: the job's code runs or waits for its I/O; false while it sleeps or is paused,
   * where it can issue no request before passing a pause point.
   */
  private busy = false;
  /** Drains waiting for the job to stop being busy (child_job_drained_poll). */
  private stopWaiters: (() => void)[] = [];
  private finished!: () => void;
  /** Resolves once the job is concluded. */
  readonly concluded = new Promise<void>((resolve) => (this.finished = resolve));

  constructor(
    protected readonly host: JobHost,
    opts: JobOptions,
  ) {
    this.id = opts.id;
    this.autoFinalize = opts.autoFinalize ?? true;
    this.autoDismiss = opts.autoDismiss ?? true;
    this.transition('created');
  }

  get status(): JobStatus {
    return this.state;
  }

  /** A cancel was requested, forced or not (job_cancel_requested). */
  get cancelRequested(): boolean {
    return this.cancelled;
  }

  /** The job was cancelled with force and must stop (job_is_cancelled). */
  get isCancelled(): boolean {
    return this.cancelled && this.forceCancel;
  }

  get isPaused(): boolean {
    return this.pauseCount > 0;
  }

  /** job_start: the job begins running in the background. */
  start(): void {
    this.transition('running');
    this.busy = true;
    void this.main();
  }

  // ---- the QMP verbs ----------------------------------------------------------------------

  /** job_early_fail: a created job that never started goes away (created → null). */
  earlyFail(): void {
    this.transition('null');
  }

  /** job_user_pause. */
  userPause(): void {
    checkVerb(this.id, this.state, 'pause');
    if (this.userPaused) throw genericError('Job is already paused');
    this.userPaused = true;
    this.pause();
  }

  /** job_user_resume: only what a user (or a `stop` error action) paused. */
  userResume(): void {
    if (!this.userPaused || this.pauseCount <= 0) {
      throw genericError("Can't resume a job that was not paused");
    }
    checkVerb(this.id, this.state, 'resume');
    this.onUserResume();
    this.userPaused = false;
    this.resume();
  }

  /** job_user_cancel. A job that may stop softly (mirror when ready) decides in `softCancel`. */
  cancel(force: boolean): void {
    checkVerb(this.id, this.state, 'cancel');
    const hard = force || !this.softCancel();
    if (this.userPaused) {
      this.onUserResume();
      this.userPaused = false;
      this.pauseCount--;
    }
    if (!this.cancelled || hard) {
      this.cancelled = true;
      this.forceCancel ||= hard;
    }
    if (this.state === 'pending') void this.finishFailed();
    else this.enter();
  }

  /** job_complete: a ready job moves on to its end (mirror and active commit pivot). */
  complete(): void {
    checkVerb(this.id, this.state, 'complete');
    if (this.cancelled || !this.onComplete) {
      throw genericError(`The active block job '${this.id}' cannot be completed`);
    }
    this.onComplete();
    this.enter();
  }

  /** job_finalize: a pending job (auto-finalize off) makes its graph changes and concludes. */
  async finalize(): Promise<void> {
    checkVerb(this.id, this.state, 'finalize');
    await this.finishSucceeded();
  }

  /** job_dismiss: a concluded job (auto-dismiss off) goes away. */
  dismiss(): void {
    checkVerb(this.id, this.state, 'dismiss');
    this.transition('null');
    this.host.remove(this);
  }

  /** Pauses the job as job-pause would (a `stop` error action): job-resume continues it. */
  protected pauseAsUser(): void {
    if (this.userPaused) return;
    this.userPaused = true;
    this.pause();
  }

  /** A drained section begins: the job stops at its next pause point (job_pause). */
  pause(): void {
    this.pauseCount++;
  }

  /** A pause ends (job_resume); the job runs again when no pause is left. */
  resume(): void {
    if (this.pauseCount === 0) return;
    if (--this.pauseCount === 0) this.enter();
  }

  /**
   * A drained section over a node the job works on (child_job_drained_begin/poll/end): the job
   * is paused, and `section` runs once it has reached a pause point — a sleeping job is woken to
   * pass one at once, a job in I/O gets there when its I/O is through (its backends let requests
   * through during drains) — or has completed. The job resumes after `section`.
   */
  async whileDrained<T>(section: () => Promise<T>): Promise<T> {
    this.pause();
    // job_pause enters a job that is not paused yet, so that it reaches its pause point.
    if (this.state !== 'paused' && this.state !== 'standby') this.enter();
    try {
      await this.stopped();
      return await section();
    } finally {
      this.resume();
    }
  }

  // ---- for subclasses -----------------------------------------------------------------------

  /** The job's work. Returns normally on success; throws on failure (or JobCancelled). */
  protected abstract run(): Promise<void>;

  /** Graph changes on success (stream drops the backing link, mirror pivots); may fail. */
  protected async prepare(): Promise<void> {}

  /** Undoes what the job did to the graph when it failed or was cancelled. */
  protected async abort(): Promise<void> {}

  /** Releases the job's resources, whatever the outcome. */
  protected async clean(): Promise<void> {}

  /** Present on jobs that accept job-complete; called in the ready status. */
  protected onComplete?(): void;

  /** Whether a cancel without force lets the job end successfully instead (mirror when ready). */
  protected softCancel(): boolean {
    return false;
  }

  /** A user resume clears what a `stop` error action set (block jobs: the io-status). */
  protected onUserResume(): void {}

  /**
   * The data of the BLOCK_JOB_* events (device, len, offset, speed, type); jobs that are not
   * block jobs (create, amend) have none and send only JOB_STATUS_CHANGE.
   */
  protected eventData(): Record<string, unknown> | undefined {
    return undefined;
  }

  /** job_transition_to_ready: the job is in sync and waits for job-complete. */
  protected setReady(): void {
    this.transition('ready');
    const data = this.eventData();
    if (data) this.host.emit('BLOCK_JOB_READY', data);
  }

  /** job_pause_point: waits while paused (status paused, or standby when ready). */
  protected async pausePoint(): Promise<void> {
    // Yield to the event loop: I/O that completes synchronously (the file protocol) must not let
    // a job's loop starve the guest and timers (QEMU's coroutines return to the main loop).
    await new Promise((resolve) => setTimeout(resolve, 0));
    if (this.pauseCount > 0 && !this.isCancelled) {
      const resumeTo = this.state;
      this.transition(resumeTo === 'ready' ? 'standby' : 'paused');
      while (this.pauseCount > 0 && !this.isCancelled) await this.yield();
      this.transition(resumeTo);
    }
    if (this.isCancelled) throw new JobCancelled();
  }

  /** job_sleep_ns: waits `ms` (woken early by a pause or cancel), then a pause point. */
  protected async sleep(ms: number): Promise<void> {
    if (ms > 0 && this.pauseCount === 0 && !this.isCancelled) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => this.enter(), ms);
        this.rest(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    await this.pausePoint();
  }

  /** Waits until something wakes the job (a resume, cancel or complete). */
  protected yield(): Promise<void> {
    return new Promise((resolve) => this.rest(resolve));
  }

  /** job_enter: wakes the job if it is waiting; it is busy from now on (job_enter_cond). */
  protected enter(): void {
    const wake = this.wake;
    if (!wake) return;
    this.wake = null;
    this.busy = true;
    wake();
  }

  /** The job waits for `wake`, not busy: drains waiting for it may go on. */
  private rest(wake: () => void): void {
    this.wake = wake;
    this.busy = false;
    this.notifyStopped();
  }

  private notifyStopped(): void {
    for (const resolve of this.stopWaiters.splice(0)) resolve();
  }

  /** Resolves once the job is not busy, or has completed (job_is_completed: it runs no more I/O). */
  private stopped(): Promise<void> {
    if (!this.busy || !RUNNING.has(this.state)) return Promise.resolve();
    return new Promise((resolve) => this.stopWaiters.push(resolve));
  }

  // ---- the end of a job -------------------------------------------------------------------

  private async main(): Promise<void> {
    try {
      await this.run();
    } catch (err) {
      if (!(err instanceof JobCancelled)) this.error = messageOf(err);
    }
    if (this.error !== undefined || this.isCancelled) return this.finishFailed();
    this.transition('waiting');
    this.transition('pending');
    if (this.autoFinalize) return this.finishSucceeded();
    if (this.eventData()) this.host.emit('BLOCK_JOB_PENDING', { type: this.type, id: this.id });
  }

  /** job_finalize_single on success: prepare (which may still fail), events, conclusion. */
  private async finishSucceeded(): Promise<void> {
    try {
      await this.prepare();
    } catch (err) {
      this.error = messageOf(err);
      return this.finishFailed();
    }
    await this.clean();
    this.conclude();
  }

  /** job_completed_txn_abort: aborting, abort, events, conclusion. */
  private async finishFailed(): Promise<void> {
    this.transition('aborting');
    await this.abort();
    await this.clean();
    this.conclude();
  }

  private conclude(): void {
    const data = this.eventData();
    if (data && this.isCancelled) this.host.emit('BLOCK_JOB_CANCELLED', data);
    else if (data)
      this.host.emit('BLOCK_JOB_COMPLETED', this.error === undefined ? data : { ...data, error: this.error });
    this.transition('concluded');
    this.finished();
    if (this.autoDismiss) this.dismiss();
  }

  private transition(to: JobStatus): void {
    checkTransition(this.state, to);
    this.state = to;
    this.host.emit('JOB_STATUS_CHANGE', { status: to, id: this.id });
    if (!RUNNING.has(to)) this.notifyStopped();
  }
}

/** The statuses in which job_is_completed is false: run() has not returned yet. */
const RUNNING: ReadonlySet<JobStatus> = new Set([
  'undefined',
  'created',
  'running',
  'paused',
  'ready',
  'standby',
]);

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
