/**
 * Adaptive read-ahead. A few read heads follow sequential streams (a guest reading a file while
 * another process reads elsewhere): a read that starts where a head's last read ended (or within
 * one chunk after it) continues that head and doubles its window, up to the cap; any other read
 * starts a new head with no window, replacing the least recently used one. So random access
 * fetches only what it asks for, and a long sequential read soon fetches `cap` bytes ahead.
 */

/** Streams followed at once; more concurrent sequential streams than this look random. */
const HEADS = 4;

interface Head {
  /** Where the head's last read ended. */
  next: number;
  /** Bytes to fetch beyond the current read. */
  window: number;
}

export class ReadHeads {
  /** Most recently used last. */
  private readonly heads: Head[] = [];

  /**
   * @param first the first window a sequential stream gets (one chunk)
   * @param cap   the largest window (the `readahead` option); 0 disables read-ahead
   * @param slack how far after a head's end a read may start and still continue it
   */
  constructor(
    private readonly first: number,
    private readonly cap: number,
    private readonly slack: number,
  ) {}

  /** Records a read of [offset, offset + bytes) and returns how many bytes to fetch beyond it. */
  advise(offset: number, bytes: number): number {
    const i = this.heads.findIndex((h) => offset >= h.next && offset <= h.next + this.slack);
    let head: Head;
    if (i >= 0) {
      head = this.heads.splice(i, 1)[0]!;
      head.window = Math.min(this.cap, head.window === 0 ? this.first : head.window * 2);
    } else {
      head = { next: 0, window: 0 };
      if (this.heads.length >= HEADS) this.heads.shift();
    }
    head.next = Math.max(head.next, offset + bytes);
    this.heads.push(head);
    return head.window;
  }
}
