import { describe, expect, it, vi } from 'vitest';
import { BlockBackend } from '../../src/block/backend.ts';
import { genericError } from '../../src/block/errors.ts';
import { BlockGraph } from '../../src/graph/graph.ts';
import { COMMANDS } from '../../src/qmp/commands/index.ts';
import type { QmpCommand } from '../../src/qmp/commands/types.ts';
import { QmpMonitor, type MonitorOptions } from '../../src/qmp/monitor.ts';

type Message = Record<string, unknown>;

/** An in-process server and one connection; `send` returns what came back for `text`. */
function connect(options: MonitorOptions = {}) {
  const monitor = new QmpMonitor((emit) => new BlockGraph(emit), options);
  const lines: string[] = [];
  const session = monitor.connect((text) => lines.push(text));
  const greeting = lines.shift();
  const send = async (text: string): Promise<Message[]> => {
    session.feed(`${text}\n`);
    await session.idle();
    return lines.splice(0).map((l) => JSON.parse(l) as Message);
  };
  const execute = (execute: string, args?: Message, id?: unknown) =>
    send(JSON.stringify({ execute, ...(args && { arguments: args }), ...(id !== undefined && { id }) }));
  const negotiated = async () => {
    await execute('qmp_capabilities');
    return { monitor, session, send, execute };
  };
  return { monitor, greeting, lines, send, execute, negotiated };
}

const err = (desc: string, id?: unknown, cls = 'GenericError') => ({
  ...(id !== undefined && { id }),
  error: { class: cls, desc },
});
const withoutTimestamp = (m: Message) => {
  expect(m.timestamp).toEqual({ seconds: expect.any(Number), microseconds: expect.any(Number) });
  const { timestamp: _, ...rest } = m;
  return rest;
};

describe('QMP session: wire format', () => {
  it("greets with QEMU's text layout and the oob capability", () => {
    expect(connect().greeting).toBe(
      '{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "blockgraph"}, "capabilities": ["oob"]}}',
    );
  });

  it('knows only qmp_capabilities before negotiation, and says so', async () => {
    const { execute, send } = connect();
    const negotiate = "Expecting capabilities negotiation with 'qmp_capabilities'";
    expect(await execute('query-status', undefined, 1)).toEqual([err(negotiate, 1, 'CommandNotFound')]);
    expect(await execute('no-such-command')).toEqual([err(negotiate, undefined, 'CommandNotFound')]);
    // Errors of other classes keep their text.
    expect(await send('{"id": 2}')).toEqual([err("QMP input lacks member 'execute'", 2)]);
    expect(await execute('qmp_capabilities', { enable: ['x'] })).toEqual([
      err("Parameter 'null' does not accept value 'x'"),
    ]);
    expect(await execute('qmp_capabilities', undefined, 3)).toEqual([{ return: {}, id: 3 }]);
    expect(await execute('qmp_capabilities', undefined, 4)).toEqual([
      err('Capabilities negotiation is already complete, command ignored', 4, 'CommandNotFound'),
    ]);
    expect(await execute('foo', undefined, 5)).toEqual([
      err('The command foo has not been found', 5, 'CommandNotFound'),
    ]);
  });

  it('echoes any JSON id, and leaves it out when there was none', async () => {
    const { execute } = await connect().negotiated();
    expect(await execute('query-status', undefined, { x: [1, 'a'] })).toEqual([
      { return: { running: true, singlestep: false, status: 'running' }, id: { x: [1, 'a'] } },
    ]);
    expect(await execute('stop')).toMatchObject([{ event: 'STOP' }, { return: {} }]);
  });

  it("checks the request's members as qmp_dispatch does", async () => {
    const { send } = await connect().negotiated();
    expect(await send('[1]')).toEqual([err('QMP input must be a JSON object')]);
    expect(await send('{"execute": 1, "id": 1}')).toEqual([
      err("QMP input member 'execute' must be a string", 1),
    ]);
    expect(await send('{"execute": "stop", "arguments": [], "id": 2}')).toEqual([
      err("QMP input member 'arguments' must be an object", 2),
    ]);
    expect(await send('{"execute": "stop", "control": {}}')).toEqual([
      err("QMP input member 'control' is unexpected"),
    ]);
    // Without the oob capability, exec-oob is just an unknown member.
    expect(await send('{"exec-oob": "stop"}')).toEqual([err("QMP input member 'exec-oob' is unexpected")]);
    expect(await send('{"a" 1}')).toEqual([err('JSON parse error, missing : in object pair')]);
  });

  it('with oob enabled, refuses exec-oob for commands that do not allow it', async () => {
    const { execute, send } = connect();
    await execute('qmp_capabilities', { enable: ['oob'] });
    expect(await send('{"exec-oob": "query-status", "id": 1}')).toEqual([
      err('The command query-status does not support OOB', 1),
    ]);
    expect(await send('{"execute": "stop", "exec-oob": "stop", "id": 2}')).toEqual([
      err("QMP input member 'exec-oob' clashes with 'execute'", 2),
    ]);
  });

  it("checks arguments as QAPI's input visitor: missing and mistyped in order, then unexpected", async () => {
    const { execute } = await connect().negotiated();
    expect(await execute('blockdev-del', { x: 1 })).toEqual([err("Parameter 'node-name' is missing")]);
    expect(await execute('blockdev-del', { 'node-name': 5 })).toEqual([
      err("Invalid parameter type for 'node-name', expected: string"),
    ]);
    expect(await execute('blockdev-del', { 'node-name': 'n', x: 1 })).toEqual([
      err("Parameter 'x' is unexpected"),
    ]);
    expect(await execute('query-named-block-nodes', { flat: 'yes' })).toEqual([
      err("Invalid parameter type for 'flat', expected: boolean"),
    ]);
    expect(await execute('query-status', { a: 1 })).toEqual([err("Parameter 'a' is unexpected")]);
  });

  it('answers in arrival order even when an earlier command takes longer', async () => {
    const slow: QmpCommand = {
      name: 'slow',
      help: 'test',
      args: {},
      run: () => new Promise((resolve) => setTimeout(() => resolve('slow'), 20)),
    };
    const fast: QmpCommand = { name: 'fast', help: 'test', args: {}, run: () => 'fast' };
    const commands = new Map([...COMMANDS, ['slow', slow], ['fast', fast]]);
    const { send } = await connect({ commands }).negotiated();
    expect(await send('{"execute": "slow", "id": 1}{"execute": "fast", "id": 2}')).toEqual([
      { return: 'slow', id: 1 },
      { return: 'fast', id: 2 },
    ]);
  });

  it('turns an unexpected exception into a GenericError instead of dying', async () => {
    const broken: QmpCommand = {
      name: 'broken',
      help: 'test',
      args: {},
      run: () => {
        throw new TypeError('oops');
      },
    };
    const failing: QmpCommand = {
      name: 'failing',
      help: 'test',
      args: {},
      run: () => {
        throw genericError('no');
      },
    };
    const commands = new Map([...COMMANDS, ['broken', broken], ['failing', failing]]);
    const { execute } = await connect({ commands }).negotiated();
    const log = vi.spyOn(console, 'error').mockImplementation(() => {});
    expect(await execute('broken')).toEqual([err('oops')]);
    expect(log).toHaveBeenCalledOnce();
    log.mockRestore();
    expect(await execute('failing')).toEqual([err('no')]);
  });

  it('sends events only to negotiated sessions, stamped, without empty data', async () => {
    const { monitor, lines, negotiated } = connect();
    monitor.broadcast('EARLY', {});
    expect(lines).toEqual([]);
    await negotiated();
    monitor.broadcast('BLOCK_IO_ERROR', { device: 'd' });
    monitor.broadcast('STOP', {});
    const events = lines.splice(0).map((l) => withoutTimestamp(JSON.parse(l) as Message));
    expect(events).toEqual([{ event: 'BLOCK_IO_ERROR', data: { device: 'd' } }, { event: 'STOP' }]);
  });
});

describe('QMP commands', () => {
  it('query-commands lists exactly the command table', async () => {
    const { execute } = await connect().negotiated();
    const [reply] = await execute('query-commands');
    expect(reply.return).toEqual([...COMMANDS.keys()].map((name) => ({ name })));
    // One command of every family, so a family that drops out of the table is caught.
    const names = [...COMMANDS.keys()];
    for (const name of [
      'qmp_capabilities',
      'blockdev-add',
      'blockdev-reopen',
      'transaction',
      'object-add',
      'query-jobs',
      'blockdev-mirror',
      'block-dirty-bitmap-add',
      'blockdev-backup',
      'eject',
      'human-monitor-command',
    ])
      expect(names).toContain(name);
  });

  it('stop and cont emit STOP and RESUME before their return, and only on a change', async () => {
    const { execute } = await connect().negotiated();
    const strip = (ms: Message[]) => ms.map((m) => ('event' in m ? withoutTimestamp(m) : m));
    expect(strip(await execute('stop'))).toEqual([{ event: 'STOP' }, { return: {} }]);
    expect(await execute('stop')).toEqual([{ return: {} }]);
    expect(await execute('query-status')).toEqual([
      { return: { running: false, singlestep: false, status: 'paused' } },
    ]);
    expect(strip(await execute('cont'))).toEqual([{ event: 'RESUME' }, { return: {} }]);
    expect(await execute('cont')).toEqual([{ return: {} }]);
  });

  it('quit answers, announces SHUTDOWN first, then ends the server', async () => {
    const onQuit = vi.fn();
    const { execute } = await connect({ onQuit }).negotiated();
    const replies = await execute('quit', undefined, 9);
    expect(replies.map((m) => ('event' in m ? withoutTimestamp(m) : m))).toEqual([
      { event: 'SHUTDOWN', data: { guest: false, reason: 'host-qmp-quit' } },
      { return: {}, id: 9 },
    ]);
    expect(onQuit).toHaveBeenCalledOnce();
    expect(await execute('query-status')).toEqual([]);
  });

  it('blockdev-add requires a root node-name, after the driver', async () => {
    const { execute } = await connect().negotiated();
    expect(await execute('blockdev-add', {})).toEqual([err("Parameter 'driver' is missing")]);
    expect(await execute('blockdev-add', { driver: 'null-co' })).toEqual([
      err("'node-name' must be specified for the root node"),
    ]);
    // Inline children may stay unnamed.
    expect(
      await execute('blockdev-add', { driver: 'raw', 'node-name': 'r0', file: { driver: 'null-co' } }),
    ).toEqual([{ return: {} }]);
    const [nodes] = await execute('query-named-block-nodes');
    expect((nodes.return as Message[]).map((n) => n['node-name'])).toEqual([
      'r0',
      expect.stringMatching(/^#block\d\d\d+$/),
    ]);
  });

  it('reports a drive: query-block, query-blockstats and the graph with its root edge', async () => {
    const { monitor, execute } = await connect().negotiated();
    await execute('blockdev-add', { driver: 'memory', 'node-name': 'm0', size: 65536 });
    await execute('blockdev-add', { driver: 'raw', 'node-name': 'r0', file: 'm0' });
    const blk = new BlockBackend(monitor.graph, 'drive0');
    blk.insert(monitor.graph.lookup('r0'));
    await blk.write(0, new Uint8Array(512).fill(1));

    expect((await execute('query-block'))[0].return).toEqual([JSON.parse(JSON.stringify(blk.queryBlock()))]);
    const [stats] = (await execute('query-blockstats'))[0].return as Message[];
    expect(stats).toMatchObject({
      device: 'drive0',
      'node-name': 'r0',
      stats: { wr_operations: 1, wr_bytes: 512, account_invalid: true },
      parent: { 'node-name': 'm0', stats: { wr_operations: 0, account_invalid: false } },
    });
    const [perNode] = await execute('query-blockstats', { 'query-nodes': true });
    expect((perNode.return as Message[]).map((s) => s['node-name'])).toEqual(['m0', 'r0']);

    const [graph] = await execute('x-debug-query-block-graph');
    expect(graph.return).toEqual({
      nodes: [
        { id: 2, type: 'block-driver', name: 'r0' },
        { id: 3, type: 'block-driver', name: 'm0' },
        { id: 1, type: 'block-backend', name: 'drive0' },
      ],
      edges: [
        {
          parent: 2,
          child: 3,
          name: 'file',
          perm: ['write', 'consistent-read'],
          'shared-perm': ['resize', 'write-unchanged', 'consistent-read'],
        },
        {
          parent: 1,
          child: 2,
          name: 'root',
          perm: ['write', 'consistent-read'],
          'shared-perm': ['resize', 'write-unchanged', 'consistent-read'],
        },
      ],
    });
    expect(await execute('blockdev-del', { 'node-name': 'r0' })).toEqual([err('Node r0 is in use')]);
    expect(await execute('blockdev-del', { 'node-name': 'm0' })).toEqual([err('Block device m0 is in use')]);
  });
});
