/**
 * The client's half of fixed newstyle negotiation (doc/proto.md "Fixed newstyle negotiation",
 * "Option types", "Metadata querying"), in the order QEMU's nbd_receive_negotiate uses:
 * NBD_OPT_STRUCTURED_REPLY, NBD_OPT_SET_META_CONTEXT for `base:allocation`, then NBD_OPT_GO
 * asking for NBD_INFO_BLOCK_SIZE; a server that does not know NBD_OPT_GO gets
 * NBD_OPT_EXPORT_NAME. Refusals carry QEMU's texts (nbd/client.c, nbd_handle_reply_err).
 */
import { genericError } from '../block/errors.ts';
import type { Channel } from './channel.ts';
import {
  BASE_ALLOCATION,
  DEFAULT_MAX_PAYLOAD,
  FLAG_FIXED_NEWSTYLE,
  FLAG_NO_ZEROES,
  IHAVEOPT,
  Info,
  isRepError,
  NBDMAGIC,
  Opt,
  OPT_REPLY_MAGIC,
  Rep,
} from './protocol.ts';
import { encodeOption, encodeString, isMagic64, ProtocolError, WireReader, WireWriter } from './wire.ts';

/** What the handshake learned about the export. */
export interface ExportInfo {
  readonly size: number;
  /** Transmission flags (TFlag). */
  readonly flags: number;
  /** NBD_INFO_BLOCK_SIZE, or the protocol's defaults (1, 4096, 32 MiB). */
  readonly minBlock: number;
  readonly maxBlock: number;
  readonly structured: boolean;
  /** The id the server gave `base:allocation`; absent when block status is unavailable. */
  readonly allocationContext?: number;
}

/** QEMU's names for options in messages (nbd_opt_lookup). */
const OPT_NAMES: Readonly<Record<number, string>> = {
  [Opt.EXPORT_NAME]: 'export name',
  [Opt.ABORT]: 'abort',
  [Opt.LIST]: 'list',
  [Opt.STARTTLS]: 'starttls',
  [Opt.INFO]: 'info',
  [Opt.GO]: 'go',
  [Opt.STRUCTURED_REPLY]: 'structured reply',
  [Opt.LIST_META_CONTEXT]: 'list meta context',
  [Opt.SET_META_CONTEXT]: 'set meta context',
};

interface OptionReply {
  readonly type: number;
  readonly data: Uint8Array;
}

/** Negotiates `exportName` on a fresh connection; throws QEMU's error texts on refusal. */
export async function negotiate(ch: Channel, exportName: string): Promise<ExportInfo> {
  const hello = new WireReader(await ch.read(18));
  const magic = hello.bytesOf(8);
  const style = hello.bytesOf(8);
  if (!isMagic64(magic, NBDMAGIC)) throw genericError('Bad initial magic received');
  if (!isMagic64(style, IHAVEOPT)) throw genericError('Server does not support newstyle negotiation');
  const serverFlags = hello.u16();
  if (!(serverFlags & FLAG_FIXED_NEWSTYLE)) throw genericError('Server does not support fixed newstyle');
  const noZeroes = (serverFlags & FLAG_NO_ZEROES) !== 0;
  ch.write(new WireWriter(4).u32(FLAG_FIXED_NEWSTYLE | (noZeroes ? FLAG_NO_ZEROES : 0)).bytes);

  const structured = (await optionAck(ch, Opt.STRUCTURED_REPLY)).type === Rep.ACK;
  const allocationContext = structured ? await setMetaContext(ch, exportName) : undefined;
  const go = await exportGo(ch, exportName);
  if (go) return { ...go, structured, allocationContext };
  // NBD_OPT_EXPORT_NAME: no reply on refusal, the server just hangs up.
  ch.write(encodeOption(Opt.EXPORT_NAME, encodeString(exportName)));
  const r = new WireReader(await ch.read(noZeroes ? 10 : 134));
  return {
    size: r.u64(),
    flags: r.u16(),
    minBlock: 1,
    maxBlock: DEFAULT_MAX_PAYLOAD,
    structured,
    allocationContext,
  };
}

/** Sends an option without data; an ERR_UNSUP reply is returned, other errors thrown. */
async function optionAck(ch: Channel, option: number): Promise<OptionReply> {
  ch.write(encodeOption(option));
  const reply = await readReply(ch, option);
  if (isRepError(reply.type) && reply.type !== Rep.ERR_UNSUP) throw replyError(option, reply);
  return reply;
}

/** NBD_OPT_SET_META_CONTEXT for base:allocation; the context id, or undefined if refused. */
async function setMetaContext(ch: Channel, exportName: string): Promise<number | undefined> {
  const name = encodeString(exportName);
  const query = encodeString(BASE_ALLOCATION);
  const data = new WireWriter(4 + name.length + 4 + 4 + query.length)
    .u32(name.length)
    .raw(name)
    .u32(1)
    .u32(query.length)
    .raw(query).bytes;
  ch.write(encodeOption(Opt.SET_META_CONTEXT, data));
  let id: number | undefined;
  for (;;) {
    const reply = await readReply(ch, Opt.SET_META_CONTEXT);
    if (reply.type === Rep.META_CONTEXT) {
      const r = new WireReader(reply.data);
      const contextId = r.u32();
      if (new TextDecoder().decode(r.bytesOf(r.remaining)) === BASE_ALLOCATION) id = contextId;
      continue;
    }
    // An unknown export is reported by NBD_OPT_GO right after, with the server's message.
    return reply.type === Rep.ACK ? id : undefined;
  }
}

/**
 * NBD_OPT_GO with NBD_INFO_BLOCK_SIZE. Returns undefined when the server does not know the
 * option (then NBD_OPT_EXPORT_NAME is the fallback), throws on any other refusal.
 */
async function exportGo(
  ch: Channel,
  exportName: string,
): Promise<Omit<ExportInfo, 'structured' | 'allocationContext'> | undefined> {
  const name = encodeString(exportName);
  const data = new WireWriter(4 + name.length + 2 + 2)
    .u32(name.length)
    .raw(name)
    .u16(1)
    .u16(Info.BLOCK_SIZE).bytes;
  ch.write(encodeOption(Opt.GO, data));
  let size: number | undefined;
  let flags = 0;
  let minBlock = 1;
  let maxBlock = DEFAULT_MAX_PAYLOAD;
  for (;;) {
    const reply = await readReply(ch, Opt.GO);
    if (reply.type === Rep.ERR_UNSUP) return undefined;
    if (isRepError(reply.type)) throw replyError(Opt.GO, reply);
    if (reply.type === Rep.ACK) break;
    if (reply.type !== Rep.INFO) continue;
    const r = new WireReader(reply.data);
    const info = r.u16();
    if (info === Info.EXPORT) {
      size = r.u64();
      flags = r.u16();
    } else if (info === Info.BLOCK_SIZE) {
      minBlock = r.u32();
      r.u32();
      maxBlock = r.u32();
    }
  }
  if (size === undefined) throw genericError('broken server omitted NBD_INFO_EXPORT');
  return { size, flags, minBlock, maxBlock };
}

async function readReply(ch: Channel, option: number): Promise<OptionReply> {
  const r = new WireReader(await ch.read(20));
  if (!isMagic64(r.bytesOf(8), OPT_REPLY_MAGIC)) throw new ProtocolError('Unexpected option reply magic');
  if (r.u32() !== option) throw new ProtocolError('Unexpected option in reply');
  const type = r.u32();
  const data = await ch.read(r.u32());
  return { type, data };
}

/** nbd_handle_reply_err: the message, then the server's own text as QEMU's hint prints it. */
function replyError(option: number, reply: OptionReply): Error {
  const opt = `option ${option} (${OPT_NAMES[option] ?? 'unknown'})`;
  const texts: Readonly<Record<number, string>> = {
    [Rep.ERR_POLICY]: `Denied by server for ${opt}`,
    [Rep.ERR_INVALID]: `Server rejected invalid ${opt}`,
    [Rep.ERR_PLATFORM]: `Server lacks support for ${opt}`,
    [Rep.ERR_TLS_REQD]: `TLS negotiation required before ${opt}`,
    [Rep.ERR_UNKNOWN]: 'Requested export not available',
    [Rep.ERR_SHUTDOWN]: `Server shutting down before ${opt}`,
    [Rep.ERR_BLOCK_SIZE_REQD]: `Server requires INFO_BLOCK_SIZE for ${opt}`,
    [Rep.ERR_TOO_BIG]: `Server considers ${opt} too large`,
  };
  const text = texts[reply.type] ?? `Unknown error code when asking for ${opt}`;
  const said = new TextDecoder().decode(reply.data);
  return genericError(said ? `${text}\nserver reported: ${said}` : text);
}
