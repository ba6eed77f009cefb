/** The blockgraph WebAssembly module: everything exported here is build/blockgraph.wasm's API. */
export { isZero, fillPattern, verifyPattern, copy } from './io/bytes';
export { scratch } from './io/scratch';
export {
  qcow2ParseHeader,
  qcow2HeaderField,
  qcow2UseL1,
  qcow2Map,
  qcow2Io,
  qcow2ConfigureCache,
  qcow2Loaded,
  qcow2CleanUnused,
  qcow2Alloc,
} from './qcow2/index';
