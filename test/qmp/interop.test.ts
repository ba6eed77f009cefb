/**
 * Interop: one QMP script run against `blockgraph daemon` and against QEMU 7.2's
 * `qemu-system-x86_64 -M none -nodefaults -display none -qmp stdio`, comparing every response
 * and event field by field. What is not compared, and why:
 *  - event timestamps (wall-clock time);
 *  - the greeting's version (we are not QEMU 7.2.22 of Debian; its capabilities are compared);
 *  - auto-generated node-names: QEMU appends two random digits to its counter (util/id.c
 *    id_generate), so each transcript's `#block...` names are renamed in order of appearance;
 *  - query-commands: QEMU has hundreds of commands; ours must be a subset of its list (but for
 *    blockgraph's own x-blockdev-replace);
 *  - query-blockstats `driver-specific` of file nodes (discard counters our file driver does
 *    not keep).
 *  - JOB_STATUS_CHANGE to `null`: QEMU dismisses a concluded job only when asked (or at quit);
 *    blockgraph's jobs run within their command and are gone when it returns.
 * Both servers get the same temporary image path, so host paths compare as they are.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { autoName, cmd, compareWithout, mismatches, type Step } from './interop-helpers.ts';
import type { Exchange } from './qmp-process.ts';

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
        // x-blockdev-replace is blockgraph's own (DESIGN.md §4): QEMU 7.2 has no such command.
        const shared = names(ours).filter((name) => name !== 'x-blockdev-replace');
        expect(names(qemu)).toEqual(expect.arrayContaining(shared));
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
