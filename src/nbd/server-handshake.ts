/**
 * The server's half of fixed newstyle negotiation (doc/proto.md "Fixed newstyle negotiation",
 * "Option types", "Metadata querying"), as QEMU's nbd/server.c answers it: exports are listed
 * and chosen by name, structured replies and the `base:allocation` context are offered, and
 * NBD_OPT_GO/INFO report the size, flags and NBD_INFO_BLOCK_SIZE. TLS is not configured.
 */
import type { Channel } from './channel.ts';
import {
  BASE_ALLOCATION,
  DEFAULT_MAX_PAYLOAD,
  FLAG_FIXED_NEWSTYLE,
  FLAG_NO_ZEROES,
  IHAVEOPT,
  Info,
  NBDMAGIC,
  Opt,
  Rep,
  TFlag,
} from './protocol.ts';
import {
  decodeString,
  encodeOptionReply,
  encodeString,
  isMagic64,
  ProtocolError,
  WireReader,
  WireWriter,
} from './wire.ts';

/** What the handshake needs to know about an export. */
export interface ExportView {
  readonly name: string;
  readonly description?: string;
  readonly size: () => number;
  readonly writable: boolean;
}

/** The outcome: the export chosen and what the connection negotiated. */
export interface Negotiated {
  readonly exp: ExportView;
  readonly structured: boolean;
  /** base:allocation was selected (context id BASE_ALLOCATION_ID). */
  readonly allocation: boolean;
  readonly flags: number;
}

/** QEMU's id for base:allocation (NBD_META_ID_BASE_ALLOCATION). */
export const BASE_ALLOCATION_ID = 0;
/** Option data larger than this is refused without being kept (QEMU: NBD_MAX_BUFFER_SIZE). */
const MAX_OPTION_DATA = DEFAULT_MAX_PAYLOAD;

/** The transmission flags of `exp` (nbd_export_create, nbd_negotiate_options). */
export function transmissionFlags(exp: ExportView, structured: boolean): number {
  let flags = TFlag.HAS_FLAGS | TFlag.SEND_FLUSH | TFlag.SEND_FUA | TFlag.SEND_CACHE;
  flags |= exp.writable ? TFlag.SEND_TRIM | TFlag.SEND_WRITE_ZEROES : TFlag.READ_ONLY | TFlag.CAN_MULTI_CONN;
  return structured ? flags | TFlag.SEND_DF : flags;
}

/**
 * Runs the handshake on a fresh connection. Returns the negotiated export, or undefined when
 * the client ended the session (NBD_OPT_ABORT, or a refused NBD_OPT_EXPORT_NAME).
 */
export async function serverHandshake(
  ch: Channel,
  lookup: (name: string) => ExportView | undefined,
  list: () => Iterable<ExportView>,
): Promise<Negotiated | undefined> {
  ch.write(
    new WireWriter(18)
      .u64(NBDMAGIC)
      .u64(IHAVEOPT)
      .u16(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES).bytes,
  );
  const clientFlags = new WireReader(await ch.read(4)).u32();
  if (clientFlags & ~(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES)) throw new ProtocolError('Unknown client flags');
  const noZeroes = (clientFlags & FLAG_NO_ZEROES) !== 0;
  let structured = false;
  let allocation = false;
  for (;;) {
    const head = new WireReader(await ch.read(16));
    if (!isMagic64(head.bytesOf(8), IHAVEOPT)) throw new ProtocolError('Bad option magic');
    const option = head.u32();
    const length = head.u32();
    if (length > MAX_OPTION_DATA) throw new ProtocolError('Option data too large');
    const data = new WireReader(await ch.read(length));
    const reply = (type: number, payload?: Uint8Array) => ch.write(encodeOptionReply(option, type, payload));
    const refuse = (type: number, text: string) => reply(type, encodeString(text));
    switch (option) {
      case Opt.EXPORT_NAME: {
        const exp = lookup(decodeString(data.bytesOf(length)));
        if (!exp) return undefined;
        const flags = transmissionFlags(exp, structured);
        ch.write(new WireWriter(noZeroes ? 10 : 134).u64(exp.size()).u16(flags).bytes);
        return { exp, structured, allocation, flags };
      }
      case Opt.ABORT:
        reply(Rep.ACK);
        return undefined;
      case Opt.LIST:
        if (length !== 0) {
          refuse(Rep.ERR_INVALID, 'request length must be 0');
          break;
        }
        for (const exp of list()) {
          const name = encodeString(exp.name);
          reply(Rep.SERVER, new WireWriter(4 + name.length).u32(name.length).raw(name).bytes);
        }
        reply(Rep.ACK);
        break;
      case Opt.STARTTLS:
        refuse(Rep.ERR_POLICY, 'TLS not configured');
        break;
      case Opt.STRUCTURED_REPLY:
        if (length !== 0) refuse(Rep.ERR_INVALID, 'request length must be 0');
        else if (structured) refuse(Rep.ERR_INVALID, 'structured reply already negotiated');
        else {
          structured = true;
          reply(Rep.ACK);
        }
        break;
      case Opt.LIST_META_CONTEXT:
      case Opt.SET_META_CONTEXT: {
        const selected = metaContext(
          data,
          structured,
          lookup,
          option === Opt.SET_META_CONTEXT,
          reply,
          refuse,
        );
        if (option === Opt.SET_META_CONTEXT && selected !== undefined) allocation = selected;
        break;
      }
      case Opt.INFO:
      case Opt.GO: {
        const exp = exportInfo(data, structured, lookup, reply, refuse);
        if (exp && option === Opt.GO)
          return { exp, structured, allocation, flags: transmissionFlags(exp, structured) };
        break;
      }
      default:
        refuse(Rep.ERR_UNSUP, `Unsupported option ${option}`);
    }
  }
}

type ReplyFn = (type: number, payload?: Uint8Array) => void;
type RefuseFn = (type: number, text: string) => void;

/** NBD_OPT_INFO / NBD_OPT_GO: the export's facts, or ERR_UNKNOWN. */
function exportInfo(
  data: WireReader,
  structured: boolean,
  lookup: (name: string) => ExportView | undefined,
  reply: ReplyFn,
  refuse: RefuseFn,
): ExportView | undefined {
  const name = data.string32();
  const requests = Array.from({ length: data.u16() }, () => data.u16());
  const exp = lookup(name);
  if (!exp) {
    refuse(Rep.ERR_UNKNOWN, `export '${name}' not present`);
    return undefined;
  }
  if (requests.includes(Info.NAME)) reply(Rep.INFO, infoString(Info.NAME, exp.name));
  if (requests.includes(Info.DESCRIPTION) && exp.description) {
    reply(Rep.INFO, infoString(Info.DESCRIPTION, exp.description));
  }
  // Sent whether asked or not, as QEMU does: min 1, preferred 4 KiB, max 32 MiB.
  reply(Rep.INFO, new WireWriter(14).u16(Info.BLOCK_SIZE).u32(1).u32(4096).u32(DEFAULT_MAX_PAYLOAD).bytes);
  const flags = transmissionFlags(exp, structured);
  reply(Rep.INFO, new WireWriter(12).u16(Info.EXPORT).u64(exp.size()).u16(flags).bytes);
  reply(Rep.ACK);
  return exp;
}

function infoString(type: number, text: string): Uint8Array {
  const b = encodeString(text);
  return new WireWriter(2 + b.length).u16(type).raw(b).bytes;
}

/**
 * NBD_OPT_LIST/SET_META_CONTEXT: only `base:allocation` exists. Returns, for SET, whether it
 * was selected; undefined when the request was refused.
 */
function metaContext(
  data: WireReader,
  structured: boolean,
  lookup: (name: string) => ExportView | undefined,
  set: boolean,
  reply: ReplyFn,
  refuse: RefuseFn,
): boolean | undefined {
  if (set && !structured) {
    refuse(Rep.ERR_INVALID, 'request not valid before structured replies are negotiated');
    return undefined;
  }
  const name = data.string32();
  const queries = Array.from({ length: data.u32() }, () => data.string32());
  if (!lookup(name)) {
    refuse(Rep.ERR_UNKNOWN, `export '${name}' not present`);
    return undefined;
  }
  // LIST with no queries, or a `base:` query, lists everything in the namespace.
  const match =
    queries.some((q) => q === BASE_ALLOCATION || (!set && q === 'base:')) || (!set && queries.length === 0);
  if (match) {
    const ctx = encodeString(BASE_ALLOCATION);
    reply(Rep.META_CONTEXT, new WireWriter(4 + ctx.length).u32(BASE_ALLOCATION_ID).raw(ctx).bytes);
  }
  reply(Rep.ACK);
  return match;
}
