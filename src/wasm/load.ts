/**
 * Instantiates build/blockgraph.wasm (compiled from assembly/ by asc) in Node and in browsers.
 * The module owns its memory; any export that allocates may grow it, and growing detaches every
 * ArrayBuffer view on the old memory — so callers take a fresh view after each such call
 * (see WasmIo.bytes) instead of keeping one.
 */

/** The exports of assembly/index.ts. Pointers and lengths are u32 (returned as i32: use `>>> 0`). */
export interface BlockgraphExports {
  readonly memory: WebAssembly.Memory;
  isZero(ptr: number, len: number): number;
  fillPattern(ptr: number, len: number, pattern: number): void;
  verifyPattern(ptr: number, len: number, pattern: number): number;
  copy(dst: number, src: number, len: number): void;
  /** May grow memory. */
  scratch(len: number): number;
  /** Raw deflate with a 4 KiB window (assembly/deflate/); bound in src/wasm/deflate.ts. May grow memory. */
  deflateBuffer(len: number, cap: number): number;
  deflateRaw(len: number, cap: number): number;
  deflateOutput(): number;
  // The qcow2 engine (assembly/qcow2/index.ts); typed and documented in src/qcow2/engine.ts.
  qcow2Io(): number;
  qcow2Alloc(len: number): number;
  qcow2ParseHeader(ptr: number, readWrite: number): number;
  qcow2HeaderField(i: number): bigint;
  qcow2UseL1(table: number): number;
  qcow2ConfigureCache(slots: number, bytes: number): number;
  qcow2Map(): number;
  qcow2Loaded(slot: number, ok: number): void;
  qcow2CleanUnused(): number;
  qcow2UseRefcountTable(slots: number): number;
  qcow2RefcountOf(): number;
  qcow2PrepareWrite(): number;
  qcow2Commit(id: number): number;
  qcow2Abort(id: number): void;
  qcow2ZeroClusters(mode: number): number;
  qcow2GrowL1(): number;
  qcow2TakeL1(): void;
  qcow2TakeRefcountTable(): void;
  qcow2TakeFrees(): number;
  qcow2Decref(): number;
  qcow2Incref(): number;
  qcow2AllocClusters(): number;
  qcow2UnshareL2(): number;
  qcow2ShrinkL1(): void;
  qcow2LinkL2(): void;
  qcow2NextDirty(which: number, from: number): number;
  qcow2Cleaned(which: number, slot: number, gen: number): void;
  qcow2TableFailed(which: number, moved: number): void;
  qcow2Overlaps(ignore: number): number;
  qcow2SetOverlapChecks(mask: number): void;
  qcow2PrepareCompressed(): number;
  qcow2CommitCompressed(id: number): number;
  qcow2AbortCompressed(id: number): void;
}

/** Where the module is: next to the sources in Node, an asset URL once vite has bundled this file. */
export const WASM_URL = new URL('../../build/blockgraph.wasm', import.meta.url);

/**
 * Instantiates the module from `source`: a URL (file: is read with Node's fs, anything else is
 * fetched) or the module's bytes.
 */
export async function instantiateBlockgraph(
  source: URL | BufferSource = WASM_URL,
): Promise<BlockgraphExports> {
  // Set once instantiated; an abort during instantiation cannot decode its strings yet.
  const module: { memory?: WebAssembly.Memory } = {};
  const imports = {
    env: {
      // asc's runtime calls this on a failed assertion or allocation (with --runtime stub).
      abort(msg: number, file: number, line: number, column: number): never {
        const text = (ptr: number) => (module.memory ? readAscString(module.memory, ptr) : `<${ptr}>`);
        throw new Error(`blockgraph.wasm aborted: ${text(msg)} at ${text(file)}:${line}:${column}`);
      },
    },
  };
  const { instance } = await instantiate(source, imports);
  const exports = instance.exports as unknown as BlockgraphExports;
  module.memory = exports.memory;
  return exports;
}

/**
 * Compiled modules by URL: a module is compiled once and instantiated as often as needed (the
 * qcow2 engine takes one instance per image). A failed compile is forgotten, so it can be retried.
 */
const compiled = new Map<string, Promise<WebAssembly.Module>>();

async function instantiate(
  source: URL | BufferSource,
  imports: WebAssembly.Imports,
): Promise<{ instance: WebAssembly.Instance }> {
  if (!(source instanceof URL)) return WebAssembly.instantiate(source, imports);
  let module = compiled.get(source.href);
  if (!module) {
    module = compile(source);
    compiled.set(source.href, module);
    module.catch(() => compiled.delete(source.href));
  }
  return { instance: await WebAssembly.instantiate(await module, imports) };
}

async function compile(source: URL): Promise<WebAssembly.Module> {
  if (source.protocol === 'file:') {
    // Node (its fetch has no file: support). getBuiltinModule, not import(), keeps bundlers
    // from pulling node:fs into browser builds.
    const { readFile } = process.getBuiltinModule('node:fs/promises');
    return WebAssembly.compile(await readFile(source));
  }
  const response = await fetch(source);
  if (!response.ok) throw new Error(`Cannot load ${source.href}: HTTP ${response.status}`);
  return WebAssembly.compileStreaming(response);
}

/** An AssemblyScript string: UTF-16LE code units, preceded by their byte length at ptr - 4. */
function readAscString(memory: WebAssembly.Memory, ptr: number): string {
  if (ptr === 0) return 'null';
  const bytes = new Uint32Array(memory.buffer, (ptr >>> 0) - 4, 1)[0]!;
  return String.fromCharCode(...new Uint16Array(memory.buffer, ptr >>> 0, bytes >>> 1));
}
