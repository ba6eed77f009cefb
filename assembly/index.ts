/** The blockgraph WebAssembly module: everything exported here is build/blockgraph.wasm's API. */
export { isZero, fillPattern, verifyPattern, copy } from './io/bytes';
export { scratch } from './io/scratch';
