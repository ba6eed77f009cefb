/**
 * Interop: one QMP script run against `blockgraph daemon` and against QEMU 7.2's
 * `qemu-system-x86_64 -M none -nodefaults -display none -qmp stdio`, comparing every response
 * and event field by field. What is not compared, and why:
 *  - event timestamps (wall-clock time);
 *  - the greeting's version (we are not QEMU 7.2.22 of Debian; its capabilities are compared);
 *  - auto-generated node-names: QEMU appends two random digits to its counter (util/id.c
 *    id_generate), so each transcript's `#block...` names are renamed in order of appearance;
 *  - query-commands: QEMU has hundreds of commands; ours must be a subset of its list;
 *  - query-blockstats `driver-specific` of file nodes (discard counters our file driver does
 *    not keep).
 * Both servers get the same temporary image path, so host paths compare as they are.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QmpProcess, type Exchange, type Message } from './qmp-process.ts';

const QEMU = [
  'qemu-system-x86_64',
  ['-M', 'none', '-nodefaults', '-display', 'none', '-qmp', 'stdio'],
] as const;
const OURS = [
  'node',
  ['bin/blockgraph.js', 'daemon', '--chardev', 'stdio,id=m0', '--monitor', 'chardev=m0'],
] as const;

/** A step: raw text to send (or built from the previous step's answer), and how many responses it gets. */
interface Step {
  readonly text: string | ((previous: Exchange) => string);
  readonly responses?: number;
  /** Compare differently from plain equality (after normalization). */
  readonly compare?: (ours: Exchange, qemu: Exchange) => void;
}

const cmd = (execute: string, args?: Record<string, unknown>, id?: unknown): string =>
  JSON.stringify({ execute, ...(args ? { arguments: args } : {}), ...(id !== undefined ? { id } : {}) });

/** The first auto-generated node-name in a response. */
const autoName = (previous: Exchange): string =>
  JSON.stringify(previous.responses).match(/#block\d+/)?.[0] ?? '';

function script(image: string): Step[] {
  const add = (args: Record<string, unknown>) => cmd('blockdev-add', args, 'add');
  return [
    // Before negotiation only qmp_capabilities exists.
    { text: cmd('query-status', undefined, 'early') },
    { text: cmd('qmp_capabilities', { enable: ['x'] }) },
    { text: cmd('qmp_capabilities', undefined, 1) },
    { text: cmd('qmp_capabilities', undefined, 2) },
    {
      text: cmd('query-commands'),
      compare(ours, qemu) {
        const names = (e: Exchange) => (e.responses[0].return as { name: string }[]).map((c) => c.name);
        expect(names(qemu)).toEqual(expect.arrayContaining(names(ours)));
        expect(names(ours)).toContain('blockdev-add');
      },
    },
    { text: cmd('foo', undefined, 3) },
    // The wire format: malformed JSON and malformed requests.
    { text: '{bad json}' },
    { text: '@' },
    { text: '{"a":01}', responses: 2 },
    { text: '{"a" 1}' },
    { text: '[1, 2]' },
    { text: '{"execute":"query-status","id":1,"id":2}' },
    { text: '{"foo":1}' },
    { text: '{"execute":1,"id":4}' },
    { text: '{"id":5}' },
    { text: '{"exec-oob":"query-status","id":6}' },
    { text: '{"execute":"query-status","arguments":[],"id":7}' },
    { text: "{'execute':'query-status','id':'single-quoted'}" },
    { text: cmd('query-status', { a: 1 }, 8) },
    // blockdev-add and its errors.
    { text: add({ driver: 'null-co', 'node-name': 'n0' }) },
    { text: add({ driver: 'null-co', 'node-name': 'n0' }) },
    { text: add({ driver: 'bogus', 'node-name': 'n1' }) },
    { text: add({ driver: 'null-co', 'node-name': 'n1', x: 1 }) },
    { text: add({ driver: 'null-co', 'node-name': '1bad' }) },
    { text: add({ driver: 'null-co', 'node-name': 'a'.repeat(32) }) },
    { text: add({ driver: 'null-co' }) },
    { text: add({ 'node-name': 'n1' }) },
    { text: add({ driver: 'null-co', 'node-name': 'n1', 'read-only': 'yes' }) },
    { text: add({ driver: 'file', 'node-name': 'f1', filename: '/nonexistent/image' }) },
    { text: add({ driver: 'file', 'node-name': 'f1', filename: '/tmp' }) },
    { text: add({ driver: 'raw', 'node-name': 'r9', file: 'missing' }) },
    { text: add({ driver: 'raw', 'node-name': 'r9', file: { driver: 'null-co', bogus: 1 } }) },
    { text: add({ driver: 'file', 'node-name': 'f0', filename: image }) },
    { text: add({ driver: 'raw', 'node-name': 'r0', file: 'f0' }) },
    {
      text: add({
        driver: 'raw',
        'node-name': 'r1',
        'read-only': true,
        file: { driver: 'file', filename: image },
      }),
    },
    // Queries over the graph.
    { text: cmd('query-named-block-nodes') },
    { text: cmd('query-named-block-nodes', { flat: true }) },
    { text: cmd('query-named-block-nodes', { flat: 'yes' }) },
    { text: cmd('x-debug-query-block-graph') },
    { text: cmd('query-block') },
    { text: cmd('query-blockstats') },
    { text: cmd('query-blockstats', { 'query-nodes': true }), compare: compareWithout(['driver-specific']) },
    // blockdev-del: in use, not monitor-owned, unknown, fine.
    { text: cmd('blockdev-del', { 'node-name': 'f0' }) },
    { text: cmd('query-named-block-nodes', { flat: true }) },
    { text: (previous) => cmd('blockdev-del', { 'node-name': autoName(previous) }) },
    { text: cmd('blockdev-del', { 'node-name': 'zz' }) },
    { text: cmd('blockdev-del', {}) },
    { text: cmd('blockdev-del', { 'node-name': 5 }) },
    { text: cmd('blockdev-del', { 'node-name': 'r0' }) },
    { text: cmd('blockdev-del', { 'node-name': 'f0' }) },
    { text: cmd('query-named-block-nodes', { flat: true }) },
    // The run state: STOP and RESUME come before the return, and only on a change.
    { text: cmd('query-status') },
    { text: cmd('stop') },
    { text: cmd('stop') },
    { text: cmd('query-status') },
    { text: cmd('cont') },
    { text: cmd('cont') },
    { text: cmd('query-status') },
    { text: cmd('quit', undefined, 'bye') },
  ];
}

/** Equality after dropping `keys` wherever they occur. */
function compareWithout(keys: readonly string[]): Step['compare'] {
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
  return (e) => rename({ responses: e.responses, events: e.events.map(event) }) as Exchange;
}

/**
 * Runs `steps` against both servers (spawned fresh) and returns the steps whose answers differ.
 * The greeting is checked first; the script must end with quit, after which both exit with 0.
 */
async function mismatches(steps: readonly Step[]): Promise<unknown[]> {
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
      const [textOurs, textQemu] = previous.map((p) =>
        typeof step.text === 'string' ? step.text : step.text(p),
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

describe('QMP interop with qemu-system-x86_64', () => {
  let dir: string;
  let image: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'qmp-interop-'));
    image = join(dir, 'disk.raw');
    writeFileSync(image, new Uint8Array(1 << 20));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('answers the same script with the same responses and events', async () => {
    expect(await mismatches(script(image))).toEqual([]);
  }, 15000);

  // Known differences in other parts (drivers, graph), kept visible: when they are fixed this
  // test fails — then move its steps into script() above. (1) raw with offset/size: QEMU names the node
  // json:{...} and its file edge does not share resize. (2) QEMU registers a node before the
  // children its driver opens itself (blkdebug's image; everything but `file`), so query
  // orders differ; filters also nest their child as backing-image in query-named-block-nodes.
  it('still differs for raw with offset/size and a blkdebug filter (known differences)', async () => {
    const add = (args: Record<string, unknown>) => cmd('blockdev-add', args, 'add');
    const steps: Step[] = [
      { text: cmd('qmp_capabilities') },
      {
        text: add({
          driver: 'raw',
          'node-name': 'r2',
          offset: 4096,
          size: 8192,
          file: { driver: 'null-co' },
        }),
      },
      {
        text: add({ driver: 'blkdebug', 'node-name': 'd0', image: { driver: 'null-co', 'node-name': 'n2' } }),
      },
      { text: cmd('query-named-block-nodes') },
      { text: cmd('x-debug-query-block-graph') },
      { text: cmd('quit') },
    ];
    expect((await mismatches(steps)).map((m) => (m as { sent: string }).sent)).toEqual([
      cmd('query-named-block-nodes'),
      cmd('x-debug-query-block-graph'),
    ]);
  }, 15000);
});

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
