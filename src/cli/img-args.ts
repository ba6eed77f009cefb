/**
 * Command-line parsing shared by the qemu-img-style commands (info, convert): their own options
 * plus the common image options -f, -U, --image-opts and --object, with qemu-img's wording for
 * unknown options and missing arguments (both followed by the "Try ... --help" line).
 */
import { getopt, type LongOption } from './getopt.ts';
import type { ImageSpec } from './image-opts.ts';
import { checkFormatOptions } from './image-opts.ts';
import type { ObjectRegistry } from '../objects/registry.ts';
import { addObjects } from './objects.ts';
import { CliExit } from './program.ts';

const COMMON_LONG: readonly LongOption[] = [
  { name: 'help', hasArg: false, key: 'h' },
  { name: 'format', hasArg: true, key: 'f' },
  { name: 'force-share', hasArg: false, key: 'U' },
  { name: 'image-opts', hasArg: false },
  { name: 'object', hasArg: true },
];

export interface ImageArgs {
  /** Every value given for an option, in order ('' for flags): short letter or long name. */
  values(key: string): string[];
  readonly operands: string[];
  /** The source image options: -f, --image-opts, -U (the filename is the caller's to pick). */
  readonly image: Omit<ImageSpec, 'filename'>;
  readonly objects: ObjectRegistry;
}

/** Parses `args` with `spec` (getopt letters) and the command's extra long options. */
export function parseImageArgs(args: string[], spec: string, longs: readonly LongOption[]): ImageArgs {
  const parsed = getopt(args, spec, [...COMMON_LONG, ...longs]);
  if (parsed.error) {
    const text = parsed.error.kind === 'invalid' ? 'unrecognized option' : 'missing argument for option';
    throw new CliExit(`${text} '${parsed.error.arg}'`, true);
  }
  const values = (key: string): string[] => parsed.opts.filter(([k]) => k === key).map(([, v]) => v);
  const image = {
    format: values('f').at(-1),
    imageOpts: values('image-opts').length > 0,
    forceShare: values('U').length > 0,
  };
  checkFormatOptions('img', { ...image, filename: '' });
  return { values, operands: parsed.operands, image, objects: addObjects(values('object')) };
}
