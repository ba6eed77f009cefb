import { describe, expect, it } from 'vitest';
import {
  driveShorthand,
  driveToConfig,
  parseDevice,
  parseDrive,
  type DriveConfig,
} from '../../src/config/drive.ts';

function drive(str: string, existing: DriveConfig[] = []): DriveConfig {
  return driveToConfig(parseDrive(str), existing);
}

/** Applies -drive strings in order, as QEMU does for its command line. */
function drives(...strs: string[]): DriveConfig[] {
  const out: DriveConfig[] = [];
  for (const s of strs) out.push(drive(s, out));
  return out;
}

describe('-drive → blockdev options', () => {
  it('format node over protocol node; other keys to the format, file.* to the protocol', () => {
    const d = drive('file=disk.qcow2,format=raw,if=virtio,file.locking=off,l2-cache-size=1M,node-name=n0');
    expect(d.blockdev).toEqual({
      driver: 'raw',
      'l2-cache-size': '1M',
      'node-name': 'n0',
      'read-only': false,
      file: { driver: 'file', filename: 'disk.qcow2', locking: 'off' },
    });
    expect(d.source).toBe('legacy');
    expect(d.probe).toBe(false);
  });

  it('file= is a legacy filename; file.filename= is literal', () => {
    expect(drive('file=nbd:localhost:10809:exportname=e,format=raw').blockdev?.file).toEqual({
      driver: 'nbd',
      server: { type: 'inet', host: 'localhost', port: '10809' },
      export: 'e',
    });
    expect(drive('format=raw,file.driver=file,file.filename=nbd:localhost:10809').blockdev?.file).toEqual({
      driver: 'file',
      filename: 'nbd:localhost:10809',
    });
    expect(
      drive('format=raw,file.driver=nbd,file.server.host=localhost,file.server.port=10809').blockdev?.file,
    ).toEqual({
      driver: 'nbd',
      server: { host: 'localhost', port: '10809' },
    });
  });

  it(',, escapes a comma in the filename', () => {
    expect(drive('file=a,,b.img,format=raw').blockdev?.file).toEqual({ driver: 'file', filename: 'a,b.img' });
  });

  it('json: describes the top node; the drive options win', () => {
    // Commas inside the JSON are doubled, as on QEMU's command line.
    const d = drive(
      'file=json:{"driver":"raw",,"file":{"driver":"file",,"filename":"d.raw"}},if=none,readonly=on',
    );
    expect(d.blockdev).toEqual({
      driver: 'raw',
      'read-only': true,
      file: { driver: 'file', filename: 'd.raw' },
    });
  });

  it('without format: raw, marked for probing', () => {
    const d = drive('file=d.img');
    expect(d.blockdev?.driver).toBe('raw');
    expect(d.probe).toBe(true);
    expect(drive('file=d.img,driver=raw').probe).toBe(false);
  });

  it('no file: a drive without medium', () => {
    expect(drive('if=none,id=d0').blockdev).toBeNull();
    expect(drive('file=,if=none,id=d0').blockdev).toBeNull();
  });

  it('cache= modes map to cache.direct / cache.no-flush and the backend write cache', () => {
    const modes = {
      writeback: [undefined, true],
      none: [{ direct: true, 'no-flush': false }, true],
      off: [{ direct: true, 'no-flush': false }, true],
      writethrough: [{ direct: false, 'no-flush': false }, false],
      unsafe: [{ direct: false, 'no-flush': true }, true],
      directsync: [{ direct: true, 'no-flush': false }, false],
    } as const;
    for (const [mode, [cache, writeback]] of Object.entries(modes)) {
      const d = drive(`file=x,format=raw,if=none,cache=${mode}`);
      if (mode !== 'writeback') expect(d.blockdev?.cache, mode).toEqual(cache);
      else expect(d.blockdev?.cache).toEqual({ direct: false, 'no-flush': false });
      expect(d.backend.writeback, mode).toBe(writeback);
    }
    expect(drive('file=x,format=raw').blockdev?.cache).toBeUndefined();
    expect(drive('file=x,format=raw,cache=none,cache.direct=off').blockdev?.cache).toEqual({
      direct: 'off',
      'no-flush': false,
    });
    expect(drive('file=x,format=raw,cache=none,cache.writeback=off').backend.writeback).toBe(false);
  });

  it('read-only: readonly= alias, cdrom default, discard and detect-zeroes go to the node', () => {
    expect(drive('file=x,format=raw,readonly=on').blockdev?.['read-only']).toBe(true);
    expect(drive('file=x,format=raw,read-only=on').backend.readOnly).toBe(true);
    expect(drive('file=x,format=raw,media=cdrom').backend.readOnly).toBe(true);
    expect(drive('file=x,format=raw,media=cdrom,readonly=off').backend.readOnly).toBe(false);
    expect(drive('file=x,format=raw,discard=unmap,detect-zeroes=unmap').blockdev).toMatchObject({
      discard: 'unmap',
      'detect-zeroes': 'unmap',
    });
  });

  it('snapshot, werror, rerror', () => {
    const d = drive('file=x,format=raw,if=none,snapshot=on,werror=stop,rerror=ignore');
    expect(d.snapshot).toBe(true);
    expect(d.backend).toMatchObject({ werror: 'stop', rerror: 'ignore' });
    expect(drive('file=x,format=raw').backend).toMatchObject({ werror: 'enospc', rerror: 'report' });
  });
});

describe('-drive placement and ids (captured from qemu-system-x86_64 -M pc)', () => {
  it('gives QEMU default ids and places units', () => {
    const list = drives(
      'file=a,format=raw',
      'file=b,format=raw',
      'file=c,format=raw,media=cdrom',
      'file=d,format=raw,if=virtio',
      'file=e,format=raw,if=virtio',
      'file=f,format=raw,if=floppy',
      'file=g,format=raw,if=none',
      'if=none,media=cdrom',
    );
    expect(list.map((d) => d.id)).toEqual([
      'ide0-hd0',
      'ide0-hd1',
      'ide1-cd0',
      'virtio0',
      'virtio1',
      'floppy0',
      'none0',
      'none1',
    ]);
    expect(list[2]!.backend).toMatchObject({ interface: 'ide', bus: 1, unit: 0, index: 2, media: 'cdrom' });
  });

  it('shorthands: -hda..-hdd, -cdrom, -fda', () => {
    const list: DriveConfig[] = [];
    for (const [flag, file] of [
      ['-hda', 'a'],
      ['-hdb', 'b'],
      ['-cdrom', 'c'],
      ['-hdd', 'd'],
      ['-fda', 'f'],
    ] as const) {
      list.push(driveToConfig(driveShorthand(flag, file), list));
    }
    expect(list.map((d) => d.id)).toEqual(['ide0-hd0', 'ide0-hd1', 'ide1-cd0', 'ide1-hd1', 'floppy0']);
    expect(list[2]!.backend).toMatchObject({ readOnly: true, media: 'cdrom', index: 2 });
    expect(list[4]!.backend).toMatchObject({ interface: 'floppy', index: 0 });
    // The shorthand's argument is a filename, not an options string.
    expect(driveShorthand('-hda', 'x,format=qcow2').options.file).toBe('x,format=qcow2');
  });

  it('index maps to bus/unit; explicit bus/unit too', () => {
    expect(drive('file=x,format=raw,index=3').backend).toMatchObject({ bus: 1, unit: 1, index: 3 });
    expect(drive('file=x,format=raw,bus=1,unit=1').backend).toMatchObject({ bus: 1, unit: 1, index: 3 });
  });

  it.each([
    [['file=x,if=bogus'], "unsupported bus type 'bogus'"],
    [['file=x,if=scsi'], 'machine type does not support if=scsi,bus=0,unit=0'],
    [['file=x,if=none,id=d0,media=bogus'], "'bogus' invalid media"],
    [['file=x,format=bogus'], "Unknown driver 'bogus'"],
    [['file=x,format=raw,cache=bogus'], 'invalid cache option'],
    [['file=x,format=raw,cache=on'], 'invalid cache option'],
    [['file=x,format=raw,werror=bogus'], "'bogus' invalid write error action"],
    [['file=x,format=raw,rerror=enospc'], "'enospc' invalid read error action"],
    [['file=x,format=raw,readonly=x'], "Parameter 'read-only' expects 'on' or 'off'"],
    [['file=x,format=raw,snapshot=x'], "Parameter 'snapshot' expects 'on' or 'off'"],
    [
      ['file=x,format=raw,readonly=on,read-only=on'],
      "'read-only' and its alias 'readonly' can't be used at the same time",
    ],
    [['file=x,format=raw,if=none,id=1d'], "Parameter 'id' expects an identifier"],
    [['file=x,format=raw,index=x'], "Parameter 'index' expects a number"],
    [['file=x,format=raw,if=ide,unit=x'], "Parameter 'unit' expects a number"],
    [['file=x,format=raw,if=ide,unit=2'], 'unit 2 too big (max is 1)'],
    [['file=x,format=raw,if=ide,bus=0,unit=0,index=0'], 'index cannot be used with bus and unit'],
    [
      ['file=x,format=raw,if=ide,index=0', 'file=y,format=raw,if=ide,index=0'],
      'drive with bus=0, unit=0 (index=0) exists',
    ],
    [['file=x,format=raw,if=none,id=x', 'file=y,format=raw,if=none,id=x'], "Duplicate ID 'x' for drive"],
    [['file=x,format=raw,if=floppy,werror=stop'], 'werror is not supported by this bus type'],
    [['file=x,format=raw,if=floppy,rerror=stop'], 'rerror is not supported by this bus type'],
    [['file=x,format=raw,aio=x'], 'invalid aio option'],
    [
      ['file=x,format=raw,aio=native'],
      'aio=native was specified, but it requires cache.direct=on, which was not specified.',
    ],
    [['file=x,format=raw,file.filename=y'], "Can't specify 'file' and 'filename' options at the same time"],
  ])('%j → %s', (strs, message) => {
    expect(() => drives(...strs)).toThrow(message);
  });

  it('accepts aio=native with cache.direct (throttling: drive-throttle.test.ts)', () => {
    expect(() => drive('file=x,format=raw,aio=native,cache=none')).not.toThrow();
    expect(() => drive('file=x,format=raw,copy-on-read=on')).toThrow("'copy-on-read' is not supported yet");
  });
});

describe('-device', () => {
  it('parses the implied driver and the disk properties', () => {
    expect(parseDevice('ide-hd,drive=d0,bus=ide.0,unit=0')).toEqual({
      driver: 'ide-hd',
      drive: 'd0',
      bus: 'ide.0',
      unit: 0,
      warnings: [],
    });
    expect(parseDevice('ide-cd,id=cd0')).toMatchObject({ driver: 'ide-cd', id: 'cd0' });
    expect(parseDevice('virtio-blk-pci,drive=d0')).toMatchObject({ driver: 'virtio-blk-pci', drive: 'd0' });
    expect(parseDevice('floppy,drive=f0,unit=1')).toMatchObject({ driver: 'floppy', unit: 1 });
    expect(parseDevice('driver=ide-hd,drive=x')).toMatchObject({ driver: 'ide-hd', drive: 'x' });
    expect(parseDevice('{"driver":"ide-hd","drive":"x"}')).toMatchObject({ driver: 'ide-hd', drive: 'x' });
  });

  // Captured from qemu-system-x86_64 -M pc -device ...
  it.each([
    ['bogus', "'bogus' is not a valid device model name"],
    [',drive=x', "'' is not a valid device model name"],
    ['ide-hd,drive=x,bogus=1', "Property 'ide-hd.bogus' not found"],
    ['ide-hd,drive=x,unit=x', "Parameter 'unit' expects integer"],
    ['ide-hd,drive=x,id=1a', "Parameter 'id' expects an identifier"],
    ['virtio-blk-pci', 'drive property not set'],
    ['ide-hd', 'No drive specified'],
  ])('%s → %s', (str, message) => {
    expect(() => parseDevice(str)).toThrow(message);
  });
});
