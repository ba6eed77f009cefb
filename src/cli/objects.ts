/**
 * `--object` definitions (QEMU's user-creatable objects). The block layer's only use of them is
 * `secret` (passwords and keys for encrypted images and authenticated network protocols), so
 * that is the one type accepted; the others are refused with QEMU's error for an unknown type.
 * Accepted as keyval (`secret,id=s0,data=x`, the first key implied as qom-type) or JSON.
 */
import { readFileSync } from 'node:fs';
import { errnoOf, genericError, STRERROR } from '../block/errors.ts';
import { parseKeyval } from '../config/keyval.ts';

export interface SecretObject {
  readonly id: string;
  /** The secret's bytes, decoded from `data` or read from `file`. */
  readonly data: Uint8Array;
}

/** Objects by id; commands hand this to whatever later needs a secret (LUKS, curl). */
export type ObjectRegistry = Map<string, SecretObject>;

/** Encrypted secrets (`keyid`, `iv`) are not supported: those keys are refused as unexpected. */
const SECRET_KEYS = new Set(['qom-type', 'id', 'data', 'file', 'format']);
/** QEMU's id_wellformed(); unlike node-names, object ids have no length limit. */
const IDENTIFIER = /^[A-Za-z][A-Za-z0-9_.-]*$/;

/** Parses each `--object` argument into `registry`, with QEMU's errors (user_creatable_add_qapi). */
export function addObjects(
  definitions: readonly string[],
  registry: ObjectRegistry = new Map(),
): ObjectRegistry {
  for (const def of definitions) {
    const props = def.trimStart().startsWith('{')
      ? (JSON.parse(def) as Record<string, unknown>)
      : parseKeyval(def, { impliedKey: 'qom-type' });
    const type = props['qom-type'];
    if (type === undefined) throw genericError("Parameter 'qom-type' is missing");
    if (type !== 'secret') throw genericError(`Parameter 'qom-type' does not accept value '${String(type)}'`);
    const secret = parseSecret(props);
    if (registry.has(secret.id)) {
      throw genericError(`attempt to add duplicate property '${secret.id}' to object (type 'container')`);
    }
    registry.set(secret.id, secret);
  }
  return registry;
}

function parseSecret(props: Record<string, unknown>): SecretObject {
  for (const key of Object.keys(props)) {
    if (!SECRET_KEYS.has(key)) throw genericError(`Parameter '${key}' is unexpected`);
  }
  const id = props.id;
  if (typeof id !== 'string') throw genericError("Parameter 'id' is missing");
  if (!IDENTIFIER.test(id)) {
    throw genericError(
      "Parameter 'id' expects an identifier\nIdentifiers consist of letters, digits, '-', '.', '_', starting with a letter.",
    );
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
  const data =
    format === 'base64' ? new Uint8Array(Buffer.from(text, 'base64')) : new TextEncoder().encode(text);
  return { id, data };
}

function readSecretFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw genericError(`Unable to read ${path}: Failed to open file “${path}”: ${STRERROR[errnoOf(err)]}`);
  }
}
