/**
 * The conformance rows for the browser-only protocols (OPFS, IndexedDB, HTTP, blob) and the
 * formats over them. Only the browser run (e2e/conformance.spec.ts) takes them: the APIs they
 * need do not exist in Node. One row (or a few) per driver; each driver's file adds its own.
 */
import type { SuiteEntry } from './harness.ts';

export const BROWSER_PROTOCOLS: readonly SuiteEntry[] = [];

export const BROWSER_FORMATS: readonly SuiteEntry[] = [];
