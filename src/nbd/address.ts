/**
 * Where an NBD server is (QAPI SocketAddress, the `inet` and `unix` members), and how QEMU
 * prints it in messages (SocketAddress_to_str in util/qemu-sockets.c).
 */
export type NbdAddress =
  | { readonly type: 'inet'; readonly host: string; readonly port: string }
  | { readonly type: 'unix'; readonly path: string }
  /** A WebSocket URL (ws:// or wss://) of a bridge to a server: the browser's transport. */
  | { readonly type: 'websocket'; readonly url: string };

export function addressText(addr: NbdAddress): string {
  if (addr.type === 'unix') return addr.path;
  if (addr.type === 'websocket') return addr.url;
  return addr.host.includes(':') ? `[${addr.host}]:${addr.port}` : `${addr.host}:${addr.port}`;
}
