/**
 * Runs the test HTTP server on its own (for Playwright's webServer list, so the browser
 * conformance rows have it): `tsx test/support/http-server-main.ts PORT`. Serves `/zero/<size>`
 * zero images; answers `/` so a readiness probe sees it up. Stops on SIGTERM/SIGINT.
 */
import { TestHttpServer } from './http-server.ts';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) throw new Error('usage: http-server-main.ts PORT');
const server = await TestHttpServer.start(port);
server.serveBytes('/', new Uint8Array(0));
const stop = () => void server.close().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdout.write(`test HTTP server on ${server.origin}\n`);
