/** Helpers drivers share for reading their validated options. */
import type { OptionsSchema } from '../config/schema.ts';

/**
 * The options with the schema's defaults filled in for keys the caller left out. The graph's
 * validation already does this; drivers call it too so that a hand-built OpenContext (a test,
 * another driver) sees the same values.
 */
export function withDefaults(
  schema: OptionsSchema,
  options: Readonly<Record<string, unknown>>,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(schema)) {
    if (spec.default !== undefined) out[key] = spec.default;
  }
  for (const [key, value] of Object.entries(options)) if (value !== undefined) out[key] = value;
  return out;
}
