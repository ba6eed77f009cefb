import { readFileSync } from 'node:fs';
import { Inflate, inflateSync } from 'fflate';
import { compressedClusters } from './test/drivers/format/qcow2/compressed-clusters.ts';
const raw = readFileSync('/tmp/cz/src.raw');
const CH = +(process.env.CH ?? 16384);
function streamed(src: Uint8Array, dst: Uint8Array) {
  let pos = 0;
  const inf = new Inflate((c) => { dst.set(c.subarray(0, dst.length - pos), pos); pos += c.length; });
  for (let at = 0; at < src.length && pos < dst.length; at += CH) inf.push(src.subarray(at, at + CH));
  if (pos < dst.length) throw new Error('short');
}
function sync(src: Uint8Array, dst: Uint8Array) { if (inflateSync(src, { out: dst }).length < dst.length) throw new Error('short'); }
for (const cs of ['64k', '2M']) {
  const f = readFileSync(`/tmp/cz/zlib-${cs}.qcow2`); const z = compressedClusters(new Uint8Array(f.buffer, f.byteOffset, f.length));
  const size = cs === '64k' ? 65536 : 2 << 20; const dst = new Uint8Array(size);
  for (let round = 0; round < 2; round++) for (const [n, fn] of [['sync', sync], ['stream', streamed]] as const) {
    for (const c of z) { fn(c.src, dst); if (!Buffer.from(dst).equals(raw.subarray(c.guestOffset, c.guestOffset + size))) throw new Error(n); }
    let bytes = 0; const t0 = performance.now();
    while (performance.now() - t0 < 1500) for (const c of z) { fn(c.src, dst); bytes += size; }
    console.log(cs, n, (bytes / ((performance.now() - t0) / 1000) / 1e6).toFixed(0), 'MB/s');
  }
}
