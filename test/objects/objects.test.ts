/**
 * User-creatable objects: the registry (/objects), object creation from QMP JSON and from
 * command-line keyval, and `blockgraph io --object throttle-group,...` next to qemu-io 7.2.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run as info } from '../../src/cli/info.ts';
import { run } from '../../src/cli/io.ts';
import { addObjects } from '../../src/cli/objects.ts';
import { createObject } from '../../src/objects/create.ts';
import { ObjectRegistry } from '../../src/objects/registry.ts';
import { SecretObject } from '../../src/objects/secret.ts';
import { ThrottleGroupObject } from '../../src/objects/throttle-group.ts';
import { normalized, runOurs, runTool, tempDir } from '../cli/helpers.ts';

describe('ObjectRegistry', () => {
  it('holds objects by id, resolves QOM paths, and deletes only unused objects', () => {
    const registry = addObjects([
      'secret,id=s0,data=aGk=,format=base64',
      'throttle-group,id=tg0,limits.iops-total=5,x-bps-read=7',
    ]);
    const secret = registry.get('s0');
    expect(secret).toBeInstanceOf(SecretObject);
    expect(new TextDecoder().decode((secret as SecretObject).data)).toBe('hi');
    expect(registry.resolve('/objects/tg0')).toBe(registry.get('tg0'));
    expect(registry.resolve('tg0')).toBeInstanceOf(ThrottleGroupObject);
    expect(registry.resolve('/objects')).toBeUndefined();
    expect(() => registry.resolve('/machine')).toThrow("Device '/machine' not found");
    expect(registry.get('tg0')!.get('limits')).toMatchObject({ 'iops-total': 5, 'bps-read': 7 });
    const member = registry.throttleGroups.join('tg0');
    expect(() => registry.delete('tg0')).toThrow("object 'tg0' is in use, can not be deleted");
    registry.throttleGroups.leave(member);
    registry.delete('tg0');
    expect(registry.throttleGroups.find('tg0')).toBeUndefined();
    expect(() => registry.delete('tg0')).toThrow("object 'tg0' not found");
  });

  it('types keyval values as the command line does, JSON as QMP does', () => {
    const add = (def: string) => () => addObjects([def], new ObjectRegistry());
    expect(add('throttle-group,id=t,limits.bps-total=abc')).toThrow(
      "Parameter 'limits.bps-total' expects integer",
    );
    expect(add('throttle-group,id=t,limits.bps-total=1k')).toThrow(
      "Parameter 'limits.bps-total' expects integer",
    );
    expect(add('throttle-group,id=t,x-bps-total=-5')).toThrow('Property values cannot be negative');
    expect(add('{"qom-type":"throttle-group","id":"t","limits":{"iops-total":"2"}}')).toThrow(
      "Invalid parameter type for 'limits.iops-total', expected: integer",
    );
    expect(add('throttle-group,id=0t')).toThrow(
      "Parameter 'id' expects an identifier\nIdentifiers consist of letters, digits, '-', '.', '_', starting with a letter.",
    );
    // QMP prints no hints.
    expect(() =>
      createObject(new ObjectRegistry(), { 'qom-type': 'secret', id: '0s' }, { source: 'qmp' }),
    ).toThrow(/^Parameter 'id' expects an identifier$/);
  });

  it('keeps graphs apart: each registry has its own groups', () => {
    const a = addObjects(['throttle-group,id=tg0']);
    const b = addObjects(['throttle-group,id=tg0']);
    expect(a.throttleGroups.find('tg0')).not.toBe(b.throttleGroups.find('tg0'));
  });
});

describe('blockgraph io --object throttle-group matches qemu-io', () => {
  const tmp = tempDir();
  const image = tmp.path('t.raw');
  beforeAll(() => runTool('qemu-img', ['create', '-q', '-f', 'raw', image, '1M']));
  afterAll(tmp.cleanup);

  const opts = (group: string) =>
    `driver=throttle,throttle-group=${group},file.driver=raw,file.file.driver=file,file.file.filename=${image}`;
  /** Both tools' outcomes with timings masked (normalize) and the program name aligned. */
  async function expectSame(args: string[]): Promise<void> {
    const theirs = normalized(runTool('qemu-io', args));
    const ours = normalized(await runOurs(run, args));
    const strip = (s: string) => s.replace(/^(qemu-io|blockgraph): /gm, '');
    expect({ ...ours, stderr: strip(ours.stderr) }).toEqual({ ...theirs, stderr: strip(theirs.stderr) });
  }

  it.each([
    [['--object', 'throttle-group,id=tg0,limits.iops-total=1000', '--image-opts', opts('tg0'), '-c', 'write -P 3 0 64k', '-c', 'read -P 3 0 64k']],
    [['--object', 'throttle-group,id=tg0,limits.bps-total=-1', '-f', 'raw', '-c', 'read 0 512', image]],
    [['--object', 'throttle-group,id=tg0,limits.bps-total=abc', '-f', 'raw', '-c', 'read 0 512', image]],
    [['--object', 'throttle-group,id=tg0,limits.bogus=1', '-f', 'raw', '-c', 'read 0 512', image]],
    [['--object', 'throttle-group,id=tg0,x-bps-total-max-length=5000000000', '-f', 'raw', '-c', 'read 0 512', image]],
    [['--object', 'throttle-group,id=tg0,limits.iops-size=5', '-f', 'raw', '-c', 'read 0 512', image]],
  ])('%j', async (args) => expectSame(args)); // prettier-ignore

  it('qemu-img info opens a throttle node over a group from --object', async () => {
    const args = ['info', '--output=json', '--object', 'throttle-group,id=tg0,limits.iops-total=2', '--image-opts', opts('tg0')];
    const theirs = runTool('qemu-img', args);
    const ours = await runOurs(info, args.slice(1));
    expect(ours.status).toBe(0);
    expect(JSON.parse(ours.stdout)).toEqual(JSON.parse(theirs.stdout));
  }); // prettier-ignore
});
