/**
 * `qemu-img check` for qcow2 (QEMU's qcow2_co_check_locked and qcow2_check_refcounts): counts
 * every reference to every host cluster straight from the image's protocol node, compares the
 * counts with the stored refcounts, checks the COPIED flags, and with `repair` fixes what QEMU
 * fixes — leaks (`leaks`), and also refcounts too low, COPIED flags and a broken refcount
 * structure (`all`) — writing to the node directly. The qcow2 driver uses `repair: 'all'` to
 * repair a dirty lazy-refcounts image on a read-write open, as QEMU does.
 *
 * Each problem is reported through `log` in QEMU's words (the lines qemu-img prints on stderr).
 * An error that stops the check (QEMU's -errno returns, "Check failed: ...") is thrown.
 */
import { ioError } from '../../../block/errors.ts';
import type { BlockNode } from '../../../block/node.ts';
import { RefcountArray } from './check-imrt.ts';
import {
  markCleanAndConsistent,
  readLayout,
  readRefcountTable,
  StoredRefcounts,
  type CheckLayout,
} from './check-layout.ts';
import { checkOflagCopied, compareRefcounts, rebuildRefcountStructure } from './check-repair.ts';
import {
  calculateRefcounts,
  emptyCounts,
  NO_FIX,
  type CheckCounts,
  type FixMode,
  type Walk,
} from './check-walk.ts';

/** What checkImage found and fixed (QEMU's BdrvCheckResult, BlockFragInfo flattened). */
export type CheckResult = CheckCounts;

export interface CheckOptions {
  repair?: 'leaks' | 'all';
  log?: (line: string) => void;
}

const INT_MAX = 0x7fffffff;

/** Checks (and with `repair`, repairs) the qcow2 image held by the protocol node `file`. */
export async function checkImage(file: BlockNode, opts: CheckOptions = {}): Promise<CheckResult> {
  const fix: FixMode = { leaks: opts.repair !== undefined, errors: opts.repair === 'all' };
  const log = opts.log ?? (() => {});
  const layout = await readLayout(file);
  const res = emptyCounts();
  await checkRefcounts(file, layout, res, fix, log);
  if (fix.leaks && res.checkErrors === 0 && res.corruptions === 0) {
    await markCleanAndConsistent(file, layout);
  }
  if (fix.leaks) await file.flush();
  return res;
}

/** qcow2_check_refcounts. */
async function checkRefcounts(
  file: BlockNode,
  layout: CheckLayout,
  res: CheckCounts,
  fix: FixMode,
  log: (line: string) => void,
): Promise<void> {
  const cs = layout.clusterSize;
  const nbClusters = Math.ceil(file.length() / cs);
  if (nbClusters > INT_MAX) {
    res.checkErrors++;
    throw ioError('EFBIG');
  }
  res.totalClusters = Math.ceil(layout.size / cs);
  const stored = new StoredRefcounts(file, layout, await readRefcountTable(file, layout));
  const imrt = new RefcountArray(2 ** layout.refcountOrder, nbClusters);
  const walk = (walkFix: FixMode, counts: CheckCounts): Walk => ({
    file,
    layout,
    table: stored.table,
    res: counts,
    imrt,
    fix: walkFix,
    log,
    rebuild: false,
  });

  let w = walk(fix, res);
  await calculateRefcounts(w);
  // With a fix but no rebuild the comparison is repeated with the fix; its first result is dropped.
  const preCompare = { ...res };
  let highest = await compareRefcounts(w, stored, NO_FIX);

  if (w.rebuild && fix.errors) {
    const old = { ...res };
    log('Rebuilding refcount structure');
    try {
      stored.replaceTable(await rebuildRefcountStructure(w, stored.perBlock));
    } catch (err) {
      log((err as Error).message);
      throw err;
    }
    res.corruptions = 0;
    res.leaks = 0;
    // The old structure is gone: count again over the new one.
    imrt.clear();
    w = walk(NO_FIX, res);
    await calculateRefcounts(w);
    // The old structure is leaked now; free it. Only leaks the rebuild could not free count.
    const fresh = walk(NO_FIX, emptyCounts());
    highest = await compareRefcounts(fresh, stored, { leaks: true, errors: false });
    if (fresh.rebuild) log('ERROR rebuilt refcount structure is still broken');
    if (res.corruptions < old.corruptions) res.corruptionsFixed += old.corruptions - res.corruptions;
    if (res.leaks < old.leaks) res.leaksFixed += old.leaks - res.leaks;
    res.leaks += fresh.res.leaks;
  } else if (fix.leaks) {
    if (w.rebuild) {
      log('ERROR need to rebuild refcount structures');
      res.checkErrors++;
      throw ioError('EIO');
    }
    if (res.leaks || res.corruptions) {
      Object.assign(res, preCompare);
      highest = await compareRefcounts(w, stored, fix);
    }
  }

  await checkOflagCopied(walk(fix, res), stored, fix);
  res.imageEndOffset = (highest + 1) * cs;
}
