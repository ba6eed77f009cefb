/**
 * The opfs driver's Node-side contract: where OPFS does not exist it refuses with a message that
 * says so; DOMExceptions map to QEMU's errnos and open texts; paths normalize as POSIX ones do;
 * `opfs:` filenames parse. Its I/O, locking and creation run in real Chromium (e2e/opfs.spec.ts
 * and the conformance rows in test/conformance/entries-opfs.ts): Node has no OPFS to test them on.
 */
import { describe, expect, it } from 'vitest';
import { QmpError } from '../../../src/block/errors.ts';
import { protocolOptions } from '../../../src/config/filename.ts';
import { domErrno, openError, opfsPath, shortWriteErrno } from '../../../src/drivers/protocol/opfs-files.ts';
import { opfsCreator } from '../../../src/drivers/protocol/opfs.ts';
import { BlockGraph } from '../../../src/graph/graph.ts';

const NO_OPFS = "the origin-private file system is not available here (a browser's secure context is needed)";

describe('opfs outside a browser', () => {
  it('refuses to open and to create, saying why', async () => {
    await expect(new BlockGraph().open({ driver: 'opfs', filename: 'a/disk.img' })).rejects.toThrow(
      `Could not open 'a/disk.img': ${NO_OPFS}`,
    );
    await expect(opfsCreator.create({ filename: 'a/disk.img' })).rejects.toThrow(
      `Could not create 'a/disk.img': ${NO_OPFS}`,
    );
  });
});

describe('DOMExceptions', () => {
  it('map to the errnos that drive error policies', () => {
    const errno = (name: string) => domErrno(new DOMException('x', name));
    expect(errno('QuotaExceededError')).toBe('ENOSPC');
    expect(errno('NotFoundError')).toBe('ENOENT');
    expect(errno('InvalidStateError')).toBe('EIO');
    expect(errno('NoModificationAllowedError')).toBe('EPERM');
    expect(errno('SecurityError')).toBe('EACCES');
    expect(domErrno(new TypeError('Name is not allowed.'))).toBe('EINVAL');
    // Unknown names, including ones an object inherits, are EIO.
    expect(errno('AbortError')).toBe('EIO');
    expect(errno('constructor')).toBe('EIO');
  });

  it("an off-the-record profile's unsigned error count for a full quota is ENOSPC", () => {
    expect(shortWriteErrno(2 ** 32 - 8, 4096)).toBe('ENOSPC');
    expect(shortWriteErrno(2 ** 32 - 1, 4096)).toBe('EIO');
    // A plain short write (no error code) is EIO too.
    expect(shortWriteErrno(100, 4096)).toBe('EIO');
  });

  it('become file-posix open texts, and QEMU lock errors for a refused handle', () => {
    const text = (name: string, verb: 'open' | 'create', readOnly = false) => {
      const err = openError(new DOMException('x', name), verb, 'd/f', readOnly);
      expect(err).toBeInstanceOf(QmpError);
      return err.message;
    };
    expect(text('NotFoundError', 'open')).toBe("Could not open 'd/f': No such file or directory");
    expect(text('TypeMismatchError', 'open')).toBe("Could not open 'd/f': Is a directory");
    expect(text('TypeMismatchError', 'open', true)).toBe("'opfs' driver requires 'd/f' to be a regular file");
    expect(text('NotADirectory', 'create')).toBe("Could not create 'd/f': Not a directory");
    expect(text('QuotaExceededError', 'create')).toBe("Could not create 'd/f': No space left on device");
    expect(text('NoModificationAllowedError', 'open')).toBe('Failed to get "write" lock');
    expect(text('NoModificationAllowedError', 'open', true)).toBe('Failed to get shared "write" lock');
  });
});

describe('paths and filenames', () => {
  it('collapse repeated and leading slashes', () => {
    expect(opfsPath('/a//b/c.img')).toEqual(['a', 'b', 'c.img']);
    expect(opfsPath('c.img')).toEqual(['c.img']);
    expect(opfsPath('/')).toEqual([]);
  });

  it('opfs:PATH names the opfs driver, colons and all', () => {
    expect(protocolOptions('opfs:vm/disk:1.qcow2')).toEqual({ driver: 'opfs', filename: 'vm/disk:1.qcow2' });
  });
});
