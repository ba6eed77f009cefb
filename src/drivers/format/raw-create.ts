/**
 * raw image creation: the image is its file, sized to the virtual size (file-posix's
 * raw_co_create, which QEMU's raw format forwards to). `falloc` cannot reserve space from
 * JavaScript, so it is sized like `off`; `full` writes the zeros.
 */
import type { ImageCreator } from '../../block/driver.ts';
import { genericError } from '../../block/errors.ts';

export const rawCreator: ImageCreator = {
  options: {
    size: { type: 'size', required: true, help: 'virtual disk size' },
    preallocation: {
      type: 'enum',
      values: ['off', 'metadata', 'falloc', 'full'],
      default: 'off',
      help: 'preallocation mode (off, falloc, full)',
    },
  },
  async create(file, options) {
    const size = options.size as number;
    const mode = (options.preallocation as string | undefined) ?? 'off';
    if (mode === 'metadata') throw genericError(`Unsupported preallocation mode: ${mode}`);
    if (mode === 'full') await file.writeZeroes(0, size);
    else await file.truncate(size);
  },
};
