/**
 * Compressed cluster writes (qcow2_co_pwritev_compressed_part and _task in block/qcow2.c).
 *
 * The request covers whole clusters, or ends at the end of the image with a partial cluster,
 * which is compressed zero-padded to a whole cluster. Each cluster is compressed on its own; one
 * that does not shrink below the cluster size is written as a normal cluster instead. Otherwise
 * the engine allocates bytes for it (assembly/qcow2/compressed.ts), the data is written there,
 * and only then is the L2 entry set (commit), so the write-back order of Qcow2Writer (refcounts,
 * data, L2) covers compressed clusters too. A zero-length request pads the file to a whole
 * sector, as qemu-img convert -c asks at its end.
 */
import { ioError } from '../../../block/errors.ts';
import type { BlockNode } from '../../../block/node.ts';
import { CompressedAllocator } from '../../../qcow2/engine-compressed.ts';
import { Status, type Qcow2Engine, type WriteAnswer } from '../../../qcow2/engine.ts';
import { compressCluster } from './compress-cluster.ts';
import type { CompressionType } from './compress.ts';
import type { Qcow2Writer } from './writer.ts';

export interface CompressedWriterOptions {
  readonly file: BlockNode;
  readonly clusterSize: number;
  readonly compression: CompressionType;
  /** An external data file cannot hold compressed clusters (qcow2.txt). */
  readonly hasDataFile: boolean;
  /** The guest size in bytes (a whole number of sectors, as QEMU's total_sectors). */
  readonly length: () => number;
}

export class CompressedWriter {
  private readonly alloc: CompressedAllocator;

  constructor(
    private readonly engine: Qcow2Engine,
    private readonly writer: Qcow2Writer,
    private readonly o: CompressedWriterOptions,
  ) {
    this.alloc = new CompressedAllocator(engine);
  }

  /**
   * Writes [offset, offset + src.length) compressed. EINVAL unless cluster-aligned (or ending at
   * the image's end), ENOTSUP with a data file, EIO for a cluster that holds data already.
   */
  async write(offset: number, src: Uint8Array): Promise<void> {
    if (this.o.hasDataFile)
      throw ioError('ENOTSUP', 'qcow2: no compressed clusters in an image with a data file');
    if (src.length === 0) return this.padFileEnd();
    const cs = this.o.clusterSize;
    if (offset % cs !== 0 || (src.length % cs !== 0 && offset + src.length !== this.o.length())) {
      throw ioError('EINVAL', 'qcow2: compressed writes must cover whole clusters');
    }
    for (let pos = 0; pos < src.length; pos += cs) {
      await this.writeCluster(offset + pos, src.subarray(pos, pos + cs));
    }
  }

  private async writeCluster(offset: number, data: Uint8Array): Promise<void> {
    const cs = this.o.clusterSize;
    let cluster = data;
    if (data.length < cs) {
      cluster = new Uint8Array(cs);
      cluster.set(data);
    }
    const packed = await compressCluster(this.o.compression, this.engine.wasmExports(), cluster, cs - 1);
    if (!packed) return this.writer.write(offset, data);
    const a = await this.writer.step(() => this.prepare(offset, packed.length));
    try {
      if (a.newL2 !== 0) await this.o.file.write(a.newL2, new Uint8Array(cs));
      // qcow2_alloc_compressed_cluster_offset's event once the L2 entry is set; the data write
      // (qcow2_co_pwritev_compressed_task) is the next I/O, as in QEMU.
      this.o.file.debugEvent('l2_update_compressed');
      this.o.file.debugEvent('write_compressed');
      await this.o.file.write(a.host, packed);
    } catch (err) {
      this.alloc.abort(a.id);
      throw err;
    }
    this.alloc.commit(a.id);
  }

  private prepare(offset: number, bytes: number): WriteAnswer {
    const a = this.alloc.prepare(offset, bytes);
    // qcow2_alloc_compressed_cluster_offset: "Compression can't overwrite anything".
    if (a.status === Status.CLUSTER_IN_USE) {
      throw ioError('EIO', `qcow2: compressed write to allocated cluster at offset ${offset}`);
    }
    return a;
  }

  /** bytes == 0 in qcow2_co_pwritev_compressed_part: the file ends on a sector boundary. */
  private async padFileEnd(): Promise<void> {
    const end = this.o.file.length();
    if (this.o.file.ops.length() !== end) await this.o.file.truncate(end);
  }
}
