/**
 * The qcow2 driver's options: QEMU 7.2's BlockdevOptionsQcow2 (qapi/block-core.json), plus
 * `x-snapshot`, blockgraph's own read-only view of an internal snapshot.
 */
export const QCOW2_OPTIONS = {
  file: { type: 'child', role: 'file', required: true, help: 'the node holding the image' },
  backing: {
    type: 'child',
    role: 'backing',
    nullable: true,
    help: 'the backing node (default: the file named in the image; null: none)',
  },
  'data-file': { type: 'child', role: 'data-file', help: 'the external data file node' },
  'lazy-refcounts': { type: 'bool', help: 'postpone refcount updates (accepted; read-only for now)' },
  'pass-discard-request': { type: 'bool', help: 'pass guest discard requests to the file' },
  'pass-discard-snapshot': { type: 'bool', help: 'pass discards from freed snapshot clusters' },
  'pass-discard-other': { type: 'bool', help: 'pass other discards to the file' },
  'overlap-check': {
    type: 'any',
    help: 'metadata overlap checks before writes: none, constant, cached, all, or flags',
  },
  'cache-size': { type: 'size', help: 'maximum combined metadata (L2 + refcount) cache size' },
  'l2-cache-size': { type: 'size', help: 'maximum L2 table cache size' },
  'l2-cache-entry-size': { type: 'size', help: 'size of an L2 cache entry (a slice of a table)' },
  'refcount-cache-size': { type: 'size', help: 'maximum refcount block cache size' },
  'cache-clean-interval': {
    type: 'int',
    min: 0,
    help: 'seconds after which unused metadata cache entries are dropped (0: never; default 600)',
  },
  encrypt: { type: 'any', help: 'encryption options (encrypted images are not supported)' },
  'x-snapshot': {
    type: 'object',
    help:
      "blockgraph's own: show internal snapshot `id` and/or `name` instead of the active image, " +
      'read-only (what qemu-img convert -l does)',
    fields: {
      id: { type: 'str', help: 'the snapshot ID' },
      name: { type: 'str', help: 'the snapshot name' },
    },
  },
} as const;
