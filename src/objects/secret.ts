/**
 * The `secret` object (QEMU's crypto/secret.c): a password or key for encrypted images and
 * authenticated network protocols, given inline (`data`) or read from a host file (`file`, Node
 * only). Encrypted secrets (`keyid`, `iv`) are not supported: those keys are refused as unexpected.
 */
import { errnoOf, genericError, STRERROR } from '../block/errors.ts';
import { notWritable, propertyNotFound, type PropertyInfo, type UserObject } from './registry.ts';

const SECRET_KEYS = new Set(['qom-type', 'id', 'data', 'file', 'format']);

export class SecretObject implements UserObject {
  readonly type = 'secret';

  constructor(
    readonly id: string,
    /** The secret's bytes, decoded from `data` or read from `file`. */
    readonly data: Uint8Array,
  ) {}

  properties(): readonly PropertyInfo[] {
    return [
      { name: 'type', type: 'string' },
      { name: 'loaded', type: 'bool' },
    ];
  }

  get(property: string): unknown {
    if (property === 'type') return this.type;
    if (property === 'loaded') return true;
    throw propertyNotFound(this.type, property);
  }

  /** blockgraph keeps no writable secret property (QEMU's data/file/format/keyid/iv). */
  set(property: string): void {
    if (property === 'type' || property === 'loaded') throw notWritable(this.type, property);
    throw propertyNotFound(this.type, property);
  }

  canBeDeleted(): boolean {
    return true;
  }

  finalize(): void {}
}

/** A secret from its ObjectOptions (`id` already checked), with QEMU's errors. */
export function createSecret(id: string, props: Readonly<Record<string, unknown>>): SecretObject {
  for (const key of Object.keys(props)) {
    if (!SECRET_KEYS.has(key)) throw genericError(`Parameter '${key}' is unexpected`);
  }
  const format = props.format ?? 'raw';
  if (format !== 'raw' && format !== 'base64') {
    throw genericError(`Parameter 'format' does not accept value '${String(format)}'`);
  }
  if (props.data !== undefined && props.file !== undefined)
    throw genericError("'file' and 'data' are mutually exclusive");
  if (props.data === undefined && props.file === undefined)
    throw genericError("Either 'file' or 'data' must be provided");
  const text = props.data !== undefined ? String(props.data) : readSecretFile(String(props.file));
  const data = format === 'base64' ? base64Bytes(text) : new TextEncoder().encode(text);
  return new SecretObject(id, data);
}

function base64Bytes(text: string): Uint8Array {
  const binary = atob(text.replace(/\s/g, ''));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

/** Node's fs without a static import, so this module also loads in a browser Worker. */
function readSecretFile(path: string): string {
  const fs = globalThis.process?.getBuiltinModule?.('node:fs');
  try {
    if (!fs) throw Object.assign(new Error('no host files here'), { code: 'ENOTSUP' });
    return fs.readFileSync(path, 'utf8');
  } catch (err) {
    throw genericError(`Unable to read ${path}: Failed to open file “${path}”: ${STRERROR[errnoOf(err)]}`);
  }
}
