/**
 * I/O accounting of one BlockBackend (QEMU's block/accounting.c), reported in the shape of
 * query-blockstats' `stats` member (QAPI BlockDeviceStats, members in schema order).
 * As QEMU's devices do: write-zeroes requests count as writes, discards as unmap; a request the
 * backend refuses before it reaches the node (out of range, read-only) is *invalid*; one the node
 * failed is *failed*; a failure ignored by rerror/werror=ignore counts as done.
 */

export type AcctType = 'rd' | 'wr' | 'flush' | 'unmap';

const TYPES: readonly AcctType[] = ['rd', 'wr', 'flush', 'unmap'];

export interface BlockDeviceStats {
  rd_bytes: number;
  wr_bytes: number;
  unmap_bytes: number;
  rd_operations: number;
  wr_operations: number;
  flush_operations: number;
  unmap_operations: number;
  rd_total_time_ns: number;
  wr_total_time_ns: number;
  flush_total_time_ns: number;
  unmap_total_time_ns: number;
  wr_highest_offset: number;
  rd_merged: number;
  wr_merged: number;
  unmap_merged: number;
  idle_time_ns?: number;
  failed_rd_operations: number;
  failed_wr_operations: number;
  failed_flush_operations: number;
  failed_unmap_operations: number;
  invalid_rd_operations: number;
  invalid_wr_operations: number;
  invalid_flush_operations: number;
  invalid_unmap_operations: number;
  account_invalid: boolean;
  account_failed: boolean;
  timed_stats: never[];
}

type Counts = Record<AcctType, number>;
const zeros = (): Counts => ({ rd: 0, wr: 0, flush: 0, unmap: 0 });

/** Nanoseconds on a monotonic clock available in Node and browsers alike. */
export function nowNs(): number {
  return Math.round(performance.now() * 1e6);
}

export class BlockAcctStats {
  private readonly bytes = zeros();
  private readonly ops = zeros();
  private readonly failed = zeros();
  private readonly invalid = zeros();
  private readonly timeNs = zeros();
  private lastAccessNs = 0;
  /** End of the furthest write that reached the node (bdrv_co_write_req_finish). */
  wrHighestOffset = 0;

  /** A request completed (block_acct_done). `startNs` is from nowNs() when it started. */
  done(type: AcctType, bytes: number, startNs: number): void {
    this.bytes[type] += bytes;
    this.ops[type]++;
    this.account(type, startNs);
  }

  /** The node failed the request and the error was reported (block_acct_failed). */
  failedOp(type: AcctType, startNs: number): void {
    this.failed[type]++;
    this.account(type, startNs);
  }

  /** The request was refused before reaching the node (block_acct_invalid). */
  invalidOp(type: AcctType): void {
    this.invalid[type]++;
    this.lastAccessNs = nowNs();
  }

  /** The `stats` member of a query-blockstats entry. */
  snapshot(): BlockDeviceStats {
    const s = {} as Record<string, unknown>;
    const put = (prefix: string, counts: Counts, suffix: string, types = TYPES) => {
      for (const t of types) s[`${prefix}${t}${suffix}`] = counts[t];
    };
    put('', this.bytes, '_bytes', ['rd', 'wr', 'unmap']); // a flush moves no bytes
    put('', this.ops, '_operations');
    put('', this.timeNs, '_total_time_ns');
    s.wr_highest_offset = this.wrHighestOffset;
    Object.assign(s, { rd_merged: 0, wr_merged: 0, unmap_merged: 0 });
    if (this.lastAccessNs) s.idle_time_ns = nowNs() - this.lastAccessNs;
    put('failed_', this.failed, '_operations');
    put('invalid_', this.invalid, '_operations');
    Object.assign(s, { account_invalid: true, account_failed: true, timed_stats: [] });
    return s as unknown as BlockDeviceStats;
  }

  private account(type: AcctType, startNs: number): void {
    const now = nowNs();
    this.timeNs[type] += now - startNs;
    this.lastAccessNs = now;
  }
}
