/**
 * NBD wire constants, named and valued as in the protocol document (NetworkBlockDevice/nbd,
 * doc/proto.md; section names in the comments). Every number on the wire is big-endian.
 */

/** "Newstyle negotiation": the server's greeting, `NBDMAGIC` then `IHAVEOPT`. */
export const NBDMAGIC = 0x4e42444d41474943n;
export const IHAVEOPT = 0x49484156454f5054n;
/** "Fixed newstyle negotiation": the magic of every option reply. */
export const OPT_REPLY_MAGIC = 0x3e889045565a9n;

/** "Handshake flags" (server) and "Client flags". */
export const FLAG_FIXED_NEWSTYLE = 1 << 0;
export const FLAG_NO_ZEROES = 1 << 1;

/** "Option types". */
export const Opt = {
  EXPORT_NAME: 1,
  ABORT: 2,
  LIST: 3,
  STARTTLS: 5,
  INFO: 6,
  GO: 7,
  STRUCTURED_REPLY: 8,
  LIST_META_CONTEXT: 9,
  SET_META_CONTEXT: 10,
} as const;

/** "Option reply types"; errors have bit 31 set. */
export const Rep = {
  ACK: 1,
  SERVER: 2,
  INFO: 3,
  META_CONTEXT: 4,
  ERR_UNSUP: 2 ** 31 + 1,
  ERR_POLICY: 2 ** 31 + 2,
  ERR_INVALID: 2 ** 31 + 3,
  ERR_PLATFORM: 2 ** 31 + 4,
  ERR_TLS_REQD: 2 ** 31 + 5,
  ERR_UNKNOWN: 2 ** 31 + 6,
  ERR_SHUTDOWN: 2 ** 31 + 7,
  ERR_BLOCK_SIZE_REQD: 2 ** 31 + 8,
  ERR_TOO_BIG: 2 ** 31 + 9,
} as const;

export const isRepError = (type: number): boolean => type >= 2 ** 31;

/** "NBD_OPT_INFO and NBD_OPT_GO": information types. */
export const Info = { EXPORT: 0, NAME: 1, DESCRIPTION: 2, BLOCK_SIZE: 3 } as const;

/** "Transmission flags". */
export const TFlag = {
  HAS_FLAGS: 1 << 0,
  READ_ONLY: 1 << 1,
  SEND_FLUSH: 1 << 2,
  SEND_FUA: 1 << 3,
  ROTATIONAL: 1 << 4,
  SEND_TRIM: 1 << 5,
  SEND_WRITE_ZEROES: 1 << 6,
  SEND_DF: 1 << 7,
  CAN_MULTI_CONN: 1 << 8,
  SEND_CACHE: 1 << 10,
} as const;

/** "Request message" and "Simple reply message" magics; "Structured reply chunk message". */
export const REQUEST_MAGIC = 0x25609513;
export const SIMPLE_REPLY_MAGIC = 0x67446698;
export const STRUCTURED_REPLY_MAGIC = 0x668e33ef;
export const REQUEST_HEADER = 28;
export const SIMPLE_REPLY_HEADER = 16;
export const STRUCTURED_REPLY_HEADER = 20;

/** "Request types". */
export const Cmd = {
  READ: 0,
  WRITE: 1,
  DISC: 2,
  FLUSH: 3,
  TRIM: 4,
  CACHE: 5,
  WRITE_ZEROES: 6,
  BLOCK_STATUS: 7,
} as const;

/** "Command flags". */
export const CmdFlag = { FUA: 1 << 0, NO_HOLE: 1 << 1, DF: 1 << 2, REQ_ONE: 1 << 3 } as const;

/** "Structured reply types" and the chunk flag NBD_REPLY_FLAG_DONE. */
export const Reply = {
  NONE: 0,
  OFFSET_DATA: 1,
  OFFSET_HOLE: 2,
  BLOCK_STATUS: 5,
  ERROR: 2 ** 15 + 1,
  ERROR_OFFSET: 2 ** 15 + 2,
} as const;
export const REPLY_FLAG_DONE = 1;

/** "`base:` metadata context": the one context both sides implement, and its flags. */
export const BASE_ALLOCATION = 'base:allocation';
export const STATE_HOLE = 1;
export const STATE_ZERO = 2;

/** "Error values". */
export const NbdErr = {
  EPERM: 1,
  EIO: 5,
  ENOMEM: 12,
  EINVAL: 22,
  ENOSPC: 28,
  EOVERFLOW: 75,
  ENOTSUP: 95,
  ESHUTDOWN: 108,
} as const;

/** The IANA port (NBD_DEFAULT_PORT). */
export const DEFAULT_PORT = 10809;
/** "Block size constraints": what a client may assume without NBD_INFO_BLOCK_SIZE. */
export const DEFAULT_MAX_PAYLOAD = 32 * 1024 * 1024;
