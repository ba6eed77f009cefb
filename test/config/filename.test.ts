import { describe, expect, it } from 'vitest';
import {
  filenameToOptions,
  parseNbdFilename,
  protocolOptions,
  protocolPrefix,
} from '../../src/config/filename.ts';
import { parseKeyval } from '../../src/config/keyval.ts';

describe('protocolOptions: legacy filenames', () => {
  it('plain paths, even with colons after a slash, are files', () => {
    expect(protocolOptions('disk.img')).toEqual({ driver: 'file', filename: 'disk.img' });
    expect(protocolOptions('./foo:bar')).toEqual({ driver: 'file', filename: './foo:bar' });
    expect(protocolOptions('a/b:c')).toEqual({ driver: 'file', filename: 'a/b:c' });
    expect(protocolOptions('file:d.raw')).toEqual({ driver: 'file', filename: 'd.raw' });
    expect(protocolPrefix('/abs/x:y')).toBeUndefined();
  });

  it('refuses an unknown protocol as qemu-img does', () => {
    expect(() => protocolOptions('foo:bar')).toThrow("Unknown protocol 'foo'");
    expect(() => protocolOptions('nbd+rdma://x')).toThrow("Unknown protocol 'nbd+rdma'");
  });

  it('nbd:host:port[:exportname=e] becomes a structured server address', () => {
    expect(protocolOptions('nbd:localhost:10809')).toEqual({
      driver: 'nbd',
      server: { type: 'inet', host: 'localhost', port: '10809' },
    });
    expect(protocolOptions('nbd:localhost:10809:exportname=disk')).toEqual({
      driver: 'nbd',
      server: { type: 'inet', host: 'localhost', port: '10809' },
      export: 'disk',
    });
    expect(parseNbdFilename('nbd:unix:/tmp/s.sock:exportname=e')).toEqual({
      driver: 'nbd',
      server: { type: 'unix', path: '/tmp/s.sock' },
      export: 'e',
    });
    expect(parseNbdFilename('nbd:[::1]:1')).toMatchObject({
      server: { type: 'inet', host: '::1', port: '1' },
    });
  });

  it('nbd URIs: default port, export from the path, unix sockets from ?socket=', () => {
    expect(protocolOptions('nbd://localhost')).toEqual({
      driver: 'nbd',
      server: { type: 'inet', host: 'localhost', port: '10809' },
    });
    expect(protocolOptions('nbd://localhost:1/a/b')).toMatchObject({ server: { port: '1' }, export: 'a/b' });
    expect(protocolOptions('nbd://h:1//abs')).toMatchObject({ export: '/abs' });
    expect(protocolOptions('nbd://[::1]:1/x')).toMatchObject({
      server: { host: '::1', port: '1' },
      export: 'x',
    });
    expect(protocolOptions('nbd+tcp://h:2/e')).toMatchObject({
      server: { type: 'inet', host: 'h', port: '2' },
    });
    expect(protocolOptions('nbd+unix:///e?socket=/tmp/s')).toEqual({
      driver: 'nbd',
      server: { type: 'unix', path: '/tmp/s' },
      export: 'e',
    });
  });

  // Captured from qemu-img info <filename> (QEMU 7.2).
  it.each([
    ['nbd:', 'NBD server address missing'],
    ['nbd:localhost', "error parsing address 'localhost'"],
    ['nbd:localhost:1:exportname=', 'NBD server address missing'],
    ['nbd+unix:///e', 'No valid URL specified'],
    ['nbd+unix://h/e?socket=/s', 'No valid URL specified'],
    ['nbd://h/e?socket=/s', 'No valid URL specified'],
    ['null-co:', "The only allowed filename for this driver is 'null-co://'"],
    ['blkdebug:', 'blkdebug requires both config file and image path'],
    ['blkdebug:x', 'blkdebug requires both config file and image path'],
  ])('%s → %s', (filename, message) => {
    expect(() => protocolOptions(filename)).toThrow(message);
  });

  it('http(s)/ftp(s) become the curl driver with the whole URL', () => {
    expect(protocolOptions('https://example.com/disk.img?x=1')).toEqual({
      driver: 'https',
      url: 'https://example.com/disk.img?x=1',
    });
    expect(protocolOptions('http://h:8080/d')).toEqual({ driver: 'http', url: 'http://h:8080/d' });
    expect(protocolOptions('ftp://h/d')).toEqual({ driver: 'ftp', url: 'ftp://h/d' });
  });

  it('blkdebug:config:image and null-co:// go through their drivers', () => {
    // As blkdebug_parse_filename: the image stays a filename (x-image), opened with probing later.
    expect(protocolOptions('blkdebug:rules.cfg:d.raw')).toEqual({
      driver: 'blkdebug',
      config: 'rules.cfg',
      'x-image': 'd.raw',
    });
    expect(protocolOptions('blkdebug::d.raw')).toEqual({ driver: 'blkdebug', 'x-image': 'd.raw' });
    expect(protocolOptions('null-co://')).toEqual({ driver: 'null-co' });
  });
});

describe('the seed example: colons in filenames', () => {
  it('file= parses nbd:, file.filename= is literal', () => {
    expect(filenameToOptions('nbd:localhost:10809', 'raw')).toEqual({
      driver: 'raw',
      file: { driver: 'nbd', server: { type: 'inet', host: 'localhost', port: '10809' } },
    });
    expect(parseKeyval('driver=raw,file.driver=file,file.filename=nbd:localhost:10809')).toEqual({
      driver: 'raw',
      file: { driver: 'file', filename: 'nbd:localhost:10809' },
    });
    expect(
      parseKeyval('driver=raw,file.driver=nbd,file.server.type=inet,file.server.host=localhost'),
    ).toEqual({
      driver: 'raw',
      file: { driver: 'nbd', server: { type: 'inet', host: 'localhost' } },
    });
  });
});

describe('filenameToOptions', () => {
  it('puts the format over the protocol; raw when not given (until probed)', () => {
    expect(filenameToOptions('d.qcow2', 'qcow2')).toEqual({
      driver: 'qcow2',
      file: { driver: 'file', filename: 'd.qcow2' },
    });
    expect(filenameToOptions('d.img')).toEqual({
      driver: 'raw',
      file: { driver: 'file', filename: 'd.img' },
    });
  });

  it('a protocol given as the format is the whole tree', () => {
    expect(filenameToOptions('null-co://', 'null-co')).toEqual({ driver: 'null-co' });
    expect(filenameToOptions('d.raw', 'file')).toEqual({ driver: 'file', filename: 'd.raw' });
  });

  it('json: takes nested and dotted keys alike, and typed values', () => {
    expect(filenameToOptions('json:{"file.driver":"file","file.filename":"d.raw"}')).toEqual({
      driver: 'raw',
      file: { driver: 'file', filename: 'd.raw' },
    });
    expect(
      filenameToOptions('json:{"driver":"raw","file.driver":"file","file":{"filename":"d.raw"},"size":512}'),
    ).toEqual({
      driver: 'raw',
      size: 512,
      file: { driver: 'file', filename: 'd.raw' },
    });
    expect(filenameToOptions('json:{"driver":"file","filename":"d.raw"}', 'raw')).toEqual({
      driver: 'file',
      filename: 'd.raw',
    });
    // A string child is a node-name reference, as in blockdev-add.
    expect(filenameToOptions('json:{"file":"d.raw"}')).toEqual({ driver: 'raw', file: 'd.raw' });
  });

  it('refuses bad json: with QEMU texts', () => {
    expect(() => filenameToOptions('json:{bad')).toThrow(/^Could not parse the JSON options: /);
    expect(() => filenameToOptions('json:[1]')).toThrow('Invalid JSON object given');
  });
});
