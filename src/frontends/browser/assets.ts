/**
 * The files v86 fetches in the page (DESIGN.md §5): its WebAssembly module from the npm package,
 * and Debian's SeaBIOS (the package ships no BIOS). vite serves them in development and copies
 * them into the build; /usr/share/seabios is on the dev server's allow list (web/vite.config.ts).
 */
import v86Wasm from 'v86/build/v86.wasm?url';
import seaBios from '/usr/share/seabios/bios.bin?url';
import vgaBios from '/usr/share/seabios/vgabios-stdvga.bin?url';

export interface MachineAssets {
  /** v86.wasm */
  readonly wasm: string;
  /** The system BIOS (SeaBIOS bios.bin). */
  readonly bios: string;
  /** A VGA BIOS (none is needed for a serial-only guest, but v86 expects one). */
  readonly vgaBios: string;
}

export const DEFAULT_ASSETS: MachineAssets = { wasm: v86Wasm, bios: seaBios, vgaBios };
