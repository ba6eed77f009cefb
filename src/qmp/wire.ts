/**
 * QMP's output side (docs/interop/qmp-spec.txt): the greeting, responses, errors and events,
 * serialized as QEMU serializes them — one line per message, `", "` and `": "` separators,
 * non-ASCII escaped as \uXXXX — so a transcript of blockgraph diffs cleanly against QEMU's.
 */
import type { QmpErrorClass } from '../block/errors.ts';

/** The QEMU release whose QMP blockgraph speaks; clients check it to pick features. */
export const QEMU_VERSION = { qemu: { micro: 0, minor: 2, major: 7 }, package: 'blockgraph' } as const;

export interface QmpErrorBody {
  class: QmpErrorClass;
  desc: string;
}

export function greeting(): Record<string, unknown> {
  return { QMP: { version: QEMU_VERSION, capabilities: ['oob'] } };
}

/** `id` is echoed only when the request had one (any JSON value). */
export function returnMessage(value: unknown, id: unknown): Record<string, unknown> {
  return id === undefined ? { return: value } : { return: value, id };
}

export function errorMessage(error: QmpErrorBody, id: unknown): Record<string, unknown> {
  return id === undefined ? { error } : { id, error };
}

/** An event; QEMU leaves `data` out for events that carry none (STOP, RESUME). */
export function eventMessage(
  event: string,
  data: Record<string, unknown>,
  nowUs: number,
): Record<string, unknown> {
  const timestamp = { seconds: Math.floor(nowUs / 1e6), microseconds: Math.floor(nowUs % 1e6) };
  return Object.keys(data).length === 0 ? { timestamp, event } : { timestamp, event, data };
}

/** Wall-clock time in microseconds, as g_get_real_time(). */
export function realTimeUs(): number {
  return Math.floor((performance.timeOrigin + performance.now()) * 1000);
}

/** One message as QEMU writes it; `pretty` is the monitor's pretty=on (4-space indentation). */
export function serialize(message: unknown, pretty = false): string {
  const text = pretty ? JSON.stringify(message, null, 4) : compact(message);
  return text.replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function compact(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(compact).join(', ')}]`;
  if (value !== null && typeof value === 'object') {
    const members = Object.entries(value).filter(([, v]) => v !== undefined);
    return `{${members.map(([k, v]) => `${JSON.stringify(k)}: ${compact(v)}`).join(', ')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
