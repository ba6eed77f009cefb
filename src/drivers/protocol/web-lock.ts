/**
 * Image locking in the browser: QEMU's file locking (file-posix's OFD locks) done with the Web
 * Locks API, which every tab and worker of an origin shares. A lock is released by the returned
 * function, or by the browser when the page or worker holding it goes away (also on a crash), so
 * a lock never outlives its holder.
 */
import { genericError } from '../../block/errors.ts';

/**
 * Takes the exclusive lock `name` without waiting. On exit the lock is held until the returned
 * function is called. Throws QEMU's `Failed to get "write" lock` when another holder has it
 * (another tab, worker, or node of this realm). Where the API does not exist (Node, an insecure
 * context) nothing is locked, as QEMU's locking=auto does on hosts without OFD locks.
 */
export async function takeWriteLock(name: string): Promise<() => void> {
  const locks = (globalThis.navigator as Navigator | undefined)?.locks;
  if (!locks) return () => {};
  const release = await new Promise<(() => void) | null>((resolve, reject) => {
    locks
      .request(name, { ifAvailable: true }, (lock) => {
        if (!lock) return resolve(null);
        // The lock is held until the promise the callback returns settles.
        return new Promise<void>((done) => resolve(() => done()));
      })
      .catch(reject);
  });
  if (!release) throw genericError('Failed to get "write" lock');
  return release;
}

/** Runs `body` holding the lock `name` (taken as takeWriteLock takes it). */
export async function withWriteLock<T>(name: string, body: () => Promise<T>): Promise<T> {
  const release = await takeWriteLock(name);
  try {
    return await body();
  } finally {
    release();
  }
}
