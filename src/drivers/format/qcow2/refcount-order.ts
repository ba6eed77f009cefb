/**
 * qcow2_change_refcount_order (block/qcow2-refcount.c) for `amend -o refcount_bits=N`, on a
 * closed, clean image held by the protocol node `file`. Every stored refcount must fit the new
 * width (QEMU's refusal and text); then new refcount blocks of that width are written from the
 * counted references into free clusters, counting themselves (check's rebuild), the header is
 * switched to them and to the new width in one write, and the old blocks and table, leaked by
 * that switch, are freed as `check -r leaks` frees them. Until the header write the old
 * structure is untouched, so a crash leaves the image as it was, or with leaks.
 */
import { genericError } from '../../../block/errors.ts';
import type { BlockNode } from '../../../block/node.ts';
import { checkImage } from './check.ts';
import { RefcountArray } from './check-imrt.ts';
import { readLayout, readRefcountTable, StoredRefcounts } from './check-layout.ts';
import { rebuildRefcountStructure } from './check-repair.ts';
import { calculateRefcounts, emptyCounts, NO_FIX, type Walk } from './check-walk.ts';

/** Changes the refcount width of the image in `file` to 2^`order` bits. */
export async function changeRefcountOrder(file: BlockNode, order: number): Promise<void> {
  const layout = await readLayout(file);
  if (layout.refcountOrder === order) return;
  const cs = layout.clusterSize;
  const stored = new StoredRefcounts(file, layout, await readRefcountTable(file, layout));
  const clusters = Math.ceil(file.length() / cs);
  const max = 2n ** BigInt(2 ** order) - 1n;
  for (let i = 0; i < clusters; i++) {
    const refcount = await stored.get(i);
    if (refcount > max) {
      throw genericError(
        `Cannot decrease refcount entry width to ${2 ** order} bits: Cluster at offset ` +
          `0x${(i * cs).toString(16)} has a refcount of ${refcount}`,
      );
    }
  }
  const w: Walk = {
    file,
    layout: { ...layout, refcountOrder: order },
    table: stored.table,
    res: emptyCounts(),
    imrt: new RefcountArray(2 ** layout.refcountOrder, clusters),
    fix: NO_FIX,
    log: () => {},
    rebuild: false,
  };
  await calculateRefcounts(w);
  await rebuildRefcountStructure(w, (cs * 8) / 2 ** order, order);
  await checkImage(file, { repair: 'leaks' });
}
