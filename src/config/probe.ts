/**
 * Format probing, for images opened without a format (qemu-img without -f, -drive without
 * format=): QEMU reads the first sector and asks every format driver how sure it is
 * (bdrv_probe_all); raw is the fallback that always matches. Format drivers that recognise
 * their own images (qcow2: the magic 'QFI\xfb') register a probe here.
 */

/** How many leading bytes of the image a probe sees (QEMU's BLOCK_PROBE_BUF_SIZE). */
export const PROBE_BYTES = 512;

/** Returns a score (higher wins; QEMU's qcow2 says 100) or 0 when `head` is not this format. */
export type FormatProbe = (head: Uint8Array, filename: string) => number;

const PROBES = new Map<string, FormatProbe>();

/** Registers the probe of format `name`; a later registration for the same name replaces it. */
export function registerFormatProbe(name: string, probe: FormatProbe): void {
  PROBES.set(name, probe);
}

/** The format whose probe scores `head` highest, or 'raw' when none claims it. */
export function probeFormat(head: Uint8Array, filename = ''): string {
  let best = 'raw';
  let bestScore = 0;
  for (const [name, probe] of PROBES) {
    const score = probe(head, filename);
    if (score > bestScore) [best, bestScore] = [name, score];
  }
  return best;
}
