/**
 * The job state machine of QEMU's job.c: the statuses (qapi/job.json JobStatus), which status may
 * follow which (JobSTT), and which command verb each status accepts (JobVerbTable), with QEMU's
 * error text for a verb a status refuses.
 */
import { genericError } from '../block/errors.ts';

export type JobStatus =
  | 'undefined'
  | 'created'
  | 'running'
  | 'paused'
  | 'ready'
  | 'standby'
  | 'waiting'
  | 'pending'
  | 'aborting'
  | 'concluded'
  | 'null';

export type JobVerb =
  'cancel' | 'pause' | 'resume' | 'set-speed' | 'complete' | 'finalize' | 'dismiss' | 'change';

/** JobSTT: the statuses each status may move to. */
const TRANSITIONS: Readonly<Record<JobStatus, readonly JobStatus[]>> = {
  undefined: ['created'],
  created: ['running', 'aborting', 'null'],
  running: ['paused', 'ready', 'waiting', 'aborting'],
  paused: ['running'],
  ready: ['standby', 'waiting', 'aborting'],
  standby: ['ready'],
  waiting: ['pending', 'aborting'],
  pending: ['aborting', 'concluded'],
  aborting: ['aborting', 'concluded'],
  concluded: ['null'],
  null: [],
};

const LIVE: readonly JobStatus[] = ['created', 'running', 'paused', 'ready', 'standby'];

/** JobVerbTable: the statuses in which each verb is accepted. */
const VERBS: Readonly<Record<JobVerb, readonly JobStatus[]>> = {
  cancel: [...LIVE, 'waiting', 'pending'],
  pause: LIVE,
  resume: LIVE,
  'set-speed': LIVE,
  complete: ['ready'],
  finalize: ['pending'],
  dismiss: ['concluded'],
  change: LIVE,
};

/** job_state_transition: a move the table does not allow is a bug of ours, not a user error. */
export function checkTransition(from: JobStatus, to: JobStatus): void {
  if (!TRANSITIONS[from].includes(to)) throw new Error(`job status ${from} -> ${to} is not allowed`);
}

/** job_apply_verb_locked: throws QEMU's GenericError when `status` refuses `verb`. */
export function checkVerb(id: string, status: JobStatus, verb: JobVerb): void {
  if (VERBS[verb].includes(status)) return;
  throw genericError(`Job '${id}' in state '${status}' cannot accept command verb '${verb}'`);
}
