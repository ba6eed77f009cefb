/**
 * qemu-img's `-o` creation options (QemuOpts create_opts lists): for each format the options in
 * the order QEMU declares them — which is the order of the "Formatting ..." line — with their
 * types and defaults, merged with the `file` protocol's (block/qcow2.c qcow2_create_opts,
 * block/file-posix.c raw_create_opts). Encryption options are left out: not supported.
 */
import { genericError } from '../block/errors.ts';
import { parseQemuOpts } from '../config/qemu-opts.ts';
import { strtosz } from '../config/size.ts';

export interface CreateOptDesc {
  readonly name: string;
  readonly type: 'str' | 'bool' | 'size' | 'number';
  readonly help: string;
  /** Printed on the Formatting line when the option is not given. */
  readonly def?: string;
}

const SIZE: CreateOptDesc = { name: 'size', type: 'size', help: 'Virtual disk size' };
const PREALLOC = (modes: string): CreateOptDesc => ({
  name: 'preallocation',
  type: 'str',
  help: `Preallocation mode (allowed values: ${modes})`,
});

/** The file protocol's own options, appended after the format's (minus duplicates). */
const FILE_OPTS: readonly CreateOptDesc[] = [SIZE, PREALLOC('off, falloc, full')];

const FORMAT_OPTS: Readonly<Record<string, readonly CreateOptDesc[]>> = {
  raw: [SIZE],
  file: [],
  qcow2: [
    { name: 'cluster_size', type: 'size', help: 'qcow2 cluster size', def: '65536' },
    { name: 'extended_l2', type: 'bool', help: 'Extended L2 tables', def: 'off' },
    PREALLOC('off, metadata, falloc, full'),
    {
      name: 'compression_type',
      type: 'str',
      help: 'Compression method used for image cluster compression',
      def: 'zlib',
    },
    SIZE,
    { name: 'compat', type: 'str', help: 'Compatibility level (v2 [0.10] or v3 [1.1])' },
    { name: 'backing_file', type: 'str', help: 'File name of a base image' },
    { name: 'backing_fmt', type: 'str', help: 'Image format of the base image' },
    { name: 'data_file', type: 'str', help: 'File name of an external data file' },
    {
      name: 'data_file_raw',
      type: 'bool',
      help: 'The external data file must stay valid as a raw image',
    },
    { name: 'lazy_refcounts', type: 'bool', help: 'Postpone refcount updates', def: 'off' },
    { name: 'refcount_bits', type: 'number', help: 'Width of a reference count entry in bits', def: '16' },
  ],
};

/** The format's own options, or undefined for a format without creation. */
export function formatOpts(format: string): readonly CreateOptDesc[] | undefined {
  return FORMAT_OPTS[format];
}

/** The format's options followed by the protocol's it does not have (qemu_opts_append). */
export function mergedOpts(format: string): CreateOptDesc[] {
  const own = FORMAT_OPTS[format] ?? [];
  return [...own, ...FILE_OPTS.filter((p) => !own.some((o) => o.name === p.name))];
}

/** Given options: the string as typed, and the typed value of sizes, numbers and booleans. */
export type CreateOpts = Map<string, { readonly str: string; readonly value: string | number | boolean }>;

/**
 * Parses `-o` strings into `opts` (QemuOpts: a later value replaces an earlier one; `flag` means
 * `flag=on`), with QemuOpts' texts for unknown options and badly typed values.
 */
export function parseCreateOpts(text: string, descs: readonly CreateOptDesc[], opts: CreateOpts): void {
  for (const [name, str] of Object.entries(parseQemuOpts(text).options)) {
    const desc = descs.find((d) => d.name === name);
    if (!desc) throw genericError(`Invalid parameter '${name}'`);
    opts.set(name, { str, value: typed(desc, str) });
  }
}

function typed(desc: CreateOptDesc, str: string): string | number | boolean {
  switch (desc.type) {
    case 'str':
      return str;
    case 'bool':
      if (str === 'on' || str === 'off') return str === 'on';
      throw genericError(`Parameter '${desc.name}' expects 'on' or 'off'`);
    case 'number':
      if (/^-?\d+$/.test(str.trim())) return Number(str);
      throw genericError(`Parameter '${desc.name}' expects a number`);
    case 'size':
      try {
        return Number(strtosz(str));
      } catch {
        throw genericError(
          `Parameter '${desc.name}' expects a non-negative number below 2^64\n` +
            'Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\n' +
            'and exabytes, respectively.',
        );
      }
  }
}

/** qemu_opts_print: every option given or defaulted, in declaration order, space-separated. */
export function printOpts(descs: readonly CreateOptDesc[], opts: CreateOpts): string {
  const parts: string[] = [];
  for (const desc of descs) {
    const opt = opts.get(desc.name);
    if (opt)
      parts.push(`${desc.name}=${desc.type === 'size' || desc.type === 'number' ? opt.value : opt.str}`);
    else if (desc.def !== undefined) parts.push(`${desc.name}=${desc.def}`);
  }
  return parts.join(' ');
}

/** qemu_opts_print_help: the options sorted by name, `name=<type>` padded to 24 columns. */
export function optsHelp(descs: readonly CreateOptDesc[]): string {
  const kind = { str: 'str', bool: 'bool (on/off)', size: 'size', number: 'num' } as const;
  return [...descs]
    .sort((a, b) => (a.name < b.name ? -1 : 1))
    .map((d) => `  ${`${d.name}=<${kind[d.type]}>`.padEnd(22)} - ${d.help}\n`)
    .join('');
}

/** has_help_option: `help` or `?` among the options. */
export function wantsHelp(text: string): boolean {
  return text.split(',').some((part) => part === 'help' || part === '?');
}
