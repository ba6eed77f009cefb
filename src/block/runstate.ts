/**
 * The machine's run state, as QMP's query-status / stop / cont see it (QEMU's runstate.c and
 * qmp_cont in monitor/qmp-cmds.c). blockgraph has no vCPUs: "stopping" means telling the
 * listeners — frontends pause their emulator, BlockBackends keep requests that failed with
 * werror/rerror=stop parked — and "continuing" lets them go again.
 */
import type { EventSink } from './driver.ts';

/**
 * The QAPI RunState values blockgraph enters: 'prelaunch' (started with -S), 'running', 'paused'
 * (QMP stop) and 'io-error' (a request failed under werror/rerror=stop).
 */
export type RunStatus = 'prelaunch' | 'running' | 'paused' | 'io-error';

/** query-status's StatusInfo, members in QAPI order. */
export interface StatusInfo {
  running: boolean;
  singlestep: boolean;
  status: RunStatus;
}

/** Called on every transition between running and not running (QEMU's vm_state_notify). */
export type RunStateListener = (running: boolean, status: RunStatus) => void;

export class RunState {
  private current: RunStatus;
  private readonly listeners = new Set<RunStateListener>();

  /** `initial` is 'prelaunch' for a machine started with -S, 'running' otherwise. */
  constructor(
    private readonly emit: EventSink,
    initial: 'running' | 'prelaunch' = 'running',
  ) {
    this.current = initial;
  }

  get status(): RunStatus {
    return this.current;
  }

  get running(): boolean {
    return this.current === 'running';
  }

  query(): StatusInfo {
    return { running: this.running, singlestep: false, status: this.current };
  }

  /**
   * Stops a running machine: the status becomes `status`, STOP is emitted, listeners hear of it.
   * Stopping a machine that is not running changes nothing and emits nothing (do_vm_stop).
   */
  stop(status: 'paused' | 'io-error' = 'paused'): void {
    if (!this.running) return;
    this.current = status;
    this.emit('STOP', {});
    this.notify();
  }

  /**
   * QMP `cont`: resumes a stopped machine, emitting RESUME; listeners then retry what they
   * parked (BlockBackends reset their io-status and resubmit requests stopped on an error).
   * On a running machine nothing happens. Resolves once every listener has been told — a
   * retried request may fail again and stop the machine again before or after that.
   */
  async cont(): Promise<void> {
    if (this.running) return;
    this.current = 'running';
    this.emit('RESUME', {});
    this.notify();
  }

  /** Registers a listener; the returned function unregisters it. */
  listen(listener: RunStateListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private notify(): void {
    for (const listener of [...this.listeners]) listener(this.running, this.current);
  }
}
