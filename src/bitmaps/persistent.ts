/**
 * What a format driver that stores dirty bitmaps in its image offers the block layer (QEMU's
 * BlockDriver.bdrv_co_can_store_new_dirty_bitmap, bdrv_co_remove_persistent_dirty_bitmap and
 * the store on inactivation). qcow2 implements it (drivers/format/qcow2/bitmaps-store.ts).
 */
import type { BdrvDirtyBitmap } from './dirty-bitmap.ts';

export interface PersistentBitmaps {
  /**
   * The bitmaps the image held at open, in the node's list order (newest first): persistent,
   * disabled unless stored with the `auto` flag, inconsistent if stored IN_USE, read-only on a
   * read-only node. A writable open has marked them IN_USE in the image.
   */
  readonly loaded: readonly BdrvDirtyBitmap[];
  /**
   * Whether a new persistent bitmap `name` could be stored beside the node's `bitmaps`
   * (qcow2_co_can_store_new_dirty_bitmap). Throws QEMU's text, naming `nodeName`, when not.
   */
  canStore(name: string, granularity: number, bitmaps: readonly BdrvDirtyBitmap[], nodeName: string): void;
  /** Drops `name` from the image, if it is there (qcow2_co_remove_persistent_dirty_bitmap). */
  remove(name: string): Promise<void>;
  /**
   * Writes every persistent, consistent, writable bitmap of `bitmaps` into the image and clears
   * their IN_USE flags (qcow2_store_persistent_dirty_bitmaps), before the driver closes.
   */
  store(bitmaps: readonly BdrvDirtyBitmap[]): Promise<void>;
}
