/**
 * Running one QMP script against `blockgraph daemon` and QEMU 7.2's `qemu-system-x86_64 -M none
 * -qmp stdio` in lockstep, comparing every response and event after normalization (see
 * interop.test.ts for what is not compared, and why).
 */
import { expect } from 'vitest';
import { QmpProcess, type Exchange, type Message } from './qmp-process.ts';

const QEMU = [
  'qemu-system-x86_64',
  ['-M', 'none', '-nodefaults', '-display', 'none', '-qmp', 'stdio'],
] as const;
const OURS = [
  'node',
  ['bin/blockgraph.js', 'daemon', '--chardev', 'stdio,id=m0', '--monitor', 'chardev=m0'],
] as const;

/** In a step's text: the directory of the server's own copies of the images (`dirs`). */
export const DIR = '@DIR@';

/** A step: raw text to send (or built from the previous step's answer), and how many responses it gets. */
export interface Step {
  readonly text: string | ((previous: Exchange) => string);
  readonly responses?: number;
  /** Compare differently from plain equality (after normalization). */
  readonly compare?: (ours: Exchange, qemu: Exchange) => void;
}

export const cmd = (execute: string, args?: Record<string, unknown>, id?: unknown): string =>
  JSON.stringify({ execute, ...(args ? { arguments: args } : {}), ...(id !== undefined ? { id } : {}) });

/** The first auto-generated node-name in a response. */
export const autoName = (previous: Exchange): string =>
  JSON.stringify(previous.responses).match(/#block\d+/)?.[0] ?? '';

/** Equality after dropping `keys` wherever they occur. */
export function compareWithout(keys: readonly string[]): Step['compare'] {
  const strip = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(strip);
    if (v === null || typeof v !== 'object') return v;
    return Object.fromEntries(
      Object.entries(v)
        .filter(([k]) => !keys.includes(k))
        .map(([k, x]) => [k, strip(x)]),
    );
  };
  return (ours, qemu) => expect(strip(ours)).toEqual(strip(qemu));
}

/** Renames auto-generated node-names in order of appearance, and drops event timestamps. */
function normalizer(): (e: Exchange) => Exchange {
  const names = new Map<string, string>();
  const rename = (v: unknown): unknown => {
    if (typeof v === 'string') {
      return v.replace(/#block\d+/g, (name) => {
        if (!names.has(name)) names.set(name, `#auto${names.size}`);
        return names.get(name) as string;
      });
    }
    if (Array.isArray(v)) return v.map(rename);
    if (v === null || typeof v !== 'object') return v;
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, rename(x)]));
  };
  const event = ({ timestamp, ...rest }: Message) => {
    expect(timestamp).toEqual({ seconds: expect.any(Number), microseconds: expect.any(Number) });
    return rest;
  };
  // The `null` events of the jobs QEMU dismisses itself at quit (after SHUTDOWN) are not compared.
  const dismissed = (m: Message) =>
    m.event === 'JOB_STATUS_CHANGE' && (m.data as { status?: string }).status === 'null';
  return (e) =>
    rename({ responses: e.responses, events: e.events.filter((m) => !dismissed(m)).map(event) }) as Exchange;
}

/**
 * Runs `steps` against both servers (spawned fresh) and returns the steps whose answers differ.
 * DIR in a step's text becomes `dirs[0]` for blockgraph and `dirs[1]` for QEMU.
 * The greeting is checked first; the script must end with quit, after which both exit with 0.
 */
export async function mismatches(
  steps: readonly Step[],
  dirs: readonly [string, string] = ['', ''],
): Promise<unknown[]> {
  const ours = new QmpProcess(...OURS);
  const qemu = new QmpProcess(...QEMU);
  try {
    const [g1, g2] = await Promise.all([ours.greeting(), qemu.greeting()]);
    expect((g1.QMP as Message).capabilities).toEqual((g2.QMP as Message).capabilities);
    expect(Object.keys((g1.QMP as { version: Message }).version)).toEqual(['qemu', 'package']);
    const [normOurs, normQemu] = [normalizer(), normalizer()];
    const none: Exchange = { responses: [], events: [] };
    let previous: [Exchange, Exchange] = [none, none];
    const found: unknown[] = [];
    for (const step of steps) {
      const [textOurs, textQemu] = previous.map((p, i) =>
        (typeof step.text === 'string' ? step.text : step.text(p)).replaceAll(DIR, dirs[i]!),
      );
      previous = await Promise.all([
        ours.send(textOurs, step.responses),
        qemu.send(textQemu, step.responses),
      ]);
      const [a, b] = [normOurs(previous[0]), normQemu(previous[1])];
      const compare = step.compare ?? ((x: Exchange, y: Exchange) => expect(x).toEqual(y));
      if (!passes(() => compare(a, b))) found.push({ sent: textQemu, differences: differences(a, b) });
    }
    expect(await ours.exited).toBe(0);
    expect(await qemu.exited).toBe(0);
    return found;
  } finally {
    ours.kill();
    qemu.kill();
  }
}

/** Whether `check` passes; a failed expectation is recorded as a mismatch instead of thrown. */
function passes(check: () => void): boolean {
  try {
    check();
    return true;
  } catch {
    return false;
  }
}

/** Where two answers differ, as `path: ours <> qemu` lines, so a failure reads at a glance. */
function differences(ours: unknown, qemu: unknown, path = ''): string[] {
  const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object';
  if (!isObj(ours) || !isObj(qemu) || Array.isArray(ours) !== Array.isArray(qemu)) {
    return Object.is(ours, qemu) ? [] : [`${path}: ${JSON.stringify(ours)} <> ${JSON.stringify(qemu)}`];
  }
  const keys = new Set([...Object.keys(ours), ...Object.keys(qemu)]);
  return [...keys].flatMap((k) => differences(ours[k], qemu[k], `${path}.${k}`));
}
