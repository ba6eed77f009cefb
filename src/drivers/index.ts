/** The driver registry: one line per driver. */
import type { BlockDriver } from '../block/driver.ts';
import { blkdebugDriver } from './filter/blkdebug.ts';
import { copyBeforeWriteDriver } from './filter/copy-before-write.ts';
import { blkverifyDriver } from './filter/blkverify.ts';
import { compressDriver } from './filter/compress.ts';
import { copyOnReadDriver } from './filter/copy-on-read.ts';
import { throttleDriver } from './filter/throttle.ts';
import { volatileCacheDriver } from './filter/volatile-cache.ts';
import { qcow2Driver } from './format/qcow2.ts';
import { rawDriver } from './format/raw.ts';
import { blobDriver } from './protocol/blob.ts';
import { fileDriver } from './protocol/file.ts';
import { idbDriver } from './protocol/idb.ts';
import { httpDriver, httpsDriver } from './protocol/http.ts';
import { memoryDriver } from './protocol/memory.ts';
import { nbdDriver } from './protocol/nbd.ts';
import { nullCoDriver } from './protocol/null-co.ts';
import { snapshotAccessDriver } from './protocol/snapshot-access.ts';
import { opfsDriver } from './protocol/opfs.ts';

export const DRIVERS: readonly BlockDriver[] = [
  memoryDriver,
  fileDriver,
  nullCoDriver,
  idbDriver,
  opfsDriver,
  httpDriver,
  httpsDriver,
  blobDriver,
  nbdDriver,
  rawDriver,
  qcow2Driver,
  blkdebugDriver,
  copyOnReadDriver,
  blkverifyDriver,
  compressDriver,
  volatileCacheDriver,
  copyBeforeWriteDriver,
  snapshotAccessDriver,
  throttleDriver,
];

const BY_NAME = new Map(DRIVERS.map((d) => [d.name, d]));

export function findDriver(name: string): BlockDriver | undefined {
  return BY_NAME.get(name);
}

/** The protocol driver that handles a legacy filename prefix (`nbd:`, `http://`, `blkdebug:`). */
export function findProtocol(prefix: string): BlockDriver | undefined {
  return DRIVERS.find((d) => d.protocols?.includes(prefix));
}
