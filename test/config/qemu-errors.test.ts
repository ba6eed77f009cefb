/**
 * Confirms, against the real QEMU 7.2 tools, a sample of the error texts the config parsers
 * produce: each case runs the tool and our code on the same input and compares the messages.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseBlockdev } from '../../src/config/blockdev.ts';
import { driveToConfig, parseDrive } from '../../src/config/drive.ts';
import { filenameToOptions } from '../../src/config/filename.ts';
import { parseKeyval } from '../../src/config/keyval.ts';
import { COMMON_NODE_OPTIONS, type OptionsSchema } from '../../src/config/schema.ts';
import { parseSize } from '../../src/config/size.ts';
import { validateOptions, type OptionSource } from '../../src/config/validate.ts';
import { findDriver } from '../../src/drivers/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'bg-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(cmd: string, args: string[], input = ''): string {
  const r = spawnSync(cmd, args, { cwd: dir, input, encoding: 'utf8', timeout: 10_000 });
  return r.stdout + r.stderr;
}

function qemuSystem(args: string[], qmp = '{"execute":"qmp_capabilities"}\n'): string {
  const base = ['-M', 'none', '-nodefaults', '-display', 'none', '-qmp', 'stdio'];
  return run('qemu-system-x86_64', [...base, ...args], `${qmp}{"execute":"quit"}\n`);
}

/** Our error for `f()`, or a marker that cannot match QEMU's output. */
function ourError(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    return (err as Error).message;
  }
  return '<no error>';
}

/** Validates a whole tree the way the graph does: each node against its driver's schema. */
function validateTree(options: Record<string, unknown>, source: OptionSource, path = ''): void {
  const driver = findDriver(String(options.driver));
  if (!driver) throw new Error(`test needs driver ${String(options.driver)}`);
  const schema: OptionsSchema = { ...COMMON_NODE_OPTIONS, ...driver.options };
  const valid = validateOptions(schema, options, { source, path, driverName: driver.name });
  for (const [key, spec] of Object.entries(schema)) {
    const child = valid[key];
    if (spec.type === 'child' && child && typeof child === 'object') {
      validateTree(child as Record<string, unknown>, source, `${path}${key}.`);
    }
  }
}

describe('against qemu-img', () => {
  it.each(['1MB', '16E'])('qemu-img create ... %s', (size) => {
    const out = run('qemu-img', ['create', '-f', 'raw', 't.raw', size]);
    const ours = ourError(() => parseSize(size));
    expect(out.replace(/^qemu-img: /gm, '')).toContain(ours);
  });

  it.each([
    'driver=raw,file.driver=file,file.filename=t.raw,bogus=1',
    'driver=raw,file.driver=file,file.filename=t.raw,file.bogus=1',
    'driver=null-co,read-only=x',
    'driver=null-co,cache.direct=x',
    'driver=null-co,discard=x',
  ])('qemu-img info --image-opts %s', (opts) => {
    run('qemu-img', ['create', '-f', 'raw', 't.raw', '1M']);
    const out = run('qemu-img', ['info', '--image-opts', opts]);
    const flat = Object.fromEntries(opts.split(',').map((kv) => kv.split('=') as [string, string]));
    const ours = ourError(() => validateTree(filenameToOptions('json:' + JSON.stringify(flat)), 'legacy'));
    expect(out).toContain(`Could not open '${opts}': ${ours}`);
  });
});

describe('against qemu-system-x86_64', () => {
  it.each([
    'driver=null-co,node-name',
    'driver=null-co,a.0=1,a.2=3',
    'driver=null-co,a=1,a.b=2',
    'driver=null-co,1a=2',
    'driver=null-co,node-name=a,bogus=1',
    'driver=null-co,node-name=a,read-only=1',
    'driver=null-co,node-name=a,size=1k',
    'driver=null-co,node-name=a,discard=x',
    'driver=null-co,node-name=a,cache=on',
    'driver=raw,node-name=r,file.driver=null-co,file.bogus=1',
  ])('-blockdev %s', (arg) => {
    const out = qemuSystem(['-blockdev', arg]);
    const ours = ourError(() => {
      const { options, source } = parseBlockdev(arg);
      validateTree(options, source);
    });
    expect(out).toContain(`-blockdev ${arg}: ${ours}\n`);
  });

  it('QMP blockdev-add type errors', () => {
    const cases = [
      { driver: 'null-co', 'node-name': 'n', size: '1k' },
      { driver: 'null-co', 'node-name': 'n', cache: { direct: 'x' } },
      { driver: 'raw', 'node-name': 'r', file: { driver: 'null-co', 'read-only': 'x' } },
      { driver: 'raw', 'node-name': 'r', file: { driver: 'null-co', bogus: 1 } },
      { driver: 'raw', 'node-name': 'r', file: null },
    ];
    const script = cases.map((c) => JSON.stringify({ execute: 'blockdev-add', arguments: c })).join('\n');
    const replies = qemuSystem([], `{"execute":"qmp_capabilities"}\n${script}\n`)
      .split('\n')
      .filter((l) => l.includes('"error"'))
      .map((l) => (JSON.parse(l) as { error: { desc: string } }).error.desc);
    expect(replies).toEqual(cases.map((c) => ourError(() => validateTree(c, 'qmp'))));
  });

  it.each(['file=t.raw,if=bogus', 'file=t.raw,format=raw,cache=bogus', 'file=t.raw,format=raw,werror=bogus'])(
    '-drive %s',
    (arg) => {
      const out = qemuSystem(['-drive', arg]);
      expect(out).toContain(`-drive ${arg}: ${ourError(() => driveToConfig(parseDrive(arg)))}\n`);
    },
  );

  it('keyval keeps the escaped comma in the value', () => {
    const arg = 'driver=null-co,,node-name=a';
    expect(qemuSystem(['-blockdev', arg])).toContain(
      `Parameter 'driver' does not accept value '${String(parseKeyval(arg).driver)}'`,
    );
  });
});
