/**
 * `blockgraph nbd-bridge [-b ADDR] [-p PORT] TARGET`: lets a browser reach an NBD server. It
 * listens for WebSocket connections on ADDR:PORT (default 127.0.0.1:10810) and connects each to
 * TARGET — `HOST:PORT` or `unix:PATH`, e.g. a `blockgraph nbd` or `qemu-nbd` — splicing the byte
 * stream (src/nbd/ws-bridge.ts). The nbd driver in a page then opens
 * `server.type=websocket,server.url=ws://ADDR:PORT/`. Debian's `websockify PORT TARGET` works
 * the same way; this one needs no package. Runs until SIGINT/SIGTERM.
 */
import type { NbdAddress } from '../nbd/address.ts';
import { startBridge } from '../nbd/ws-bridge.ts';
import { getopt, glibcMessage } from './getopt.ts';
import { CliExit, PROGRAM, runReporting, type CliIo } from './program.ts';

const USAGE = `Usage: ${PROGRAM} nbd-bridge [-b ADDR] [-p PORT] HOST:PORT|unix:PATH
Bridge WebSocket clients (binary frames) to an NBD server

  -b, --bind=ADDR     address to listen on (default 127.0.0.1)
  -p, --port=PORT     WebSocket port (default 10810; 0 picks a free one)
  -h, --help          display this help and exit
`;

/** `HOST:PORT` or `unix:PATH`. */
export function parseTarget(target: string): NbdAddress {
  if (target.startsWith('unix:')) return { type: 'unix', path: target.slice('unix:'.length) };
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(target);
  if (!m) throw new CliExit(`Invalid target '${target}': expected HOST:PORT or unix:PATH`);
  return { type: 'inet', host: m[1] ?? m[2] ?? '', port: m[3]! };
}

export async function run(args: string[], io: CliIo): Promise<number> {
  const parsed = getopt(args, 'hb:p:', [
    { name: 'help', hasArg: false, key: 'h' },
    { name: 'bind', hasArg: true, key: 'b' },
    { name: 'port', hasArg: true, key: 'p' },
  ]);
  if (parsed.error) {
    io.err(`${glibcMessage(PROGRAM, parsed.error)}\n`);
    return 1;
  }
  const last = (key: string) => parsed.opts.filter(([k]) => k === key).at(-1)?.[1];
  if (last('h') !== undefined) {
    io.out(USAGE);
    return 0;
  }
  return runReporting(io, async () => {
    if (parsed.operands.length !== 1) throw new CliExit('Invalid number of arguments', true);
    const target = parseTarget(parsed.operands[0]!);
    const bridge = await startBridge(last('b') ?? '127.0.0.1', Number(last('p') ?? 10810), target);
    io.out(`listening on ws://${last('b') ?? '127.0.0.1'}:${bridge.port}/\n`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    await bridge.close();
    return 0;
  });
}
