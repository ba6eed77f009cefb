/**
 * qcow2's part of x-blockdev-amend (block/qcow2.c qcow2_co_amend): BlockdevAmendOptionsQcow2,
 * whose one member is `encrypt` (QCryptoBlockAmendOptions, a union on `format`). blockgraph
 * opens no encrypted image, so every amendment of `encrypt` fails as QEMU's does on an
 * unencrypted one; without it the amendment changes nothing.
 */
import { genericError } from '../../../block/errors.ts';
import type { BlockNode } from '../../../block/node.ts';
import type { OptionsSchema } from '../../../config/schema.ts';

/** QCryptoBlockAmendOptionsLUKS (qapi/crypto.json), members in QAPI order. */
const LUKS_AMEND: OptionsSchema = {
  state: { type: 'enum', values: ['active', 'inactive'], required: true, help: 'add or remove keyslots' },
  'new-secret': { type: 'str', help: 'secret of the keyslot to add' },
  'old-secret': { type: 'str', help: 'secret of the keyslots to remove' },
  keyslot: { type: 'int', help: 'the keyslot to change' },
  'iter-time': { type: 'int', help: 'PBKDF iteration time in milliseconds' },
};

/**
 * The members of BlockdevAmendOptionsQcow2 as QAPI visits them: `encrypt` takes the members of
 * its `format` branch (only luks has any), which is why the raw members are looked at first.
 */
export function QCOW2_AMEND_OPTIONS(raw: Readonly<Record<string, unknown>>): OptionsSchema {
  const format = (raw.encrypt as { format?: unknown } | undefined)?.format;
  return {
    encrypt: {
      type: 'object',
      help: 'encryption keyslot changes',
      fields: {
        format: { type: 'enum', values: ['qcow', 'luks'], required: true, help: 'encryption format' },
        ...(format === 'luks' ? LUKS_AMEND : {}),
      },
    },
  };
}

/** qcow2_co_amend on an image without encryption: refused if `encrypt` is given, else a no-op. */
export async function qcow2Amend(
  _node: BlockNode,
  options: Readonly<Record<string, unknown>>,
  _force: boolean,
): Promise<void> {
  if (options.encrypt !== undefined) throw genericError("image is not encrypted, can't amend");
}
