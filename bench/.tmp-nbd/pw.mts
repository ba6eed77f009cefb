import { chromium } from '@playwright/test';
import { startBridge } from '/work/main/src/nbd/ws-bridge.ts';
import { QemuNbd } from '/work/main/test/nbd/qemu-nbd.ts';
const server = await new QemuNbd('/tmp/nbdq/pw.sock', ['-f', 'raw', '-x', 'guest', '-r', '/work/main/guest/out/guest.raw']).start();
const b = await startBridge('127.0.0.1', 0, { type: 'unix', path: server.socket });
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox','--disable-gpu','--disable-quic','--no-first-run','--disable-background-networking','--disable-component-update','--disable-sync'] });
const page = await browser.newPage();
page.on('console', (m) => console.log('page:', m.text()));
await page.goto('data:text/html,<p>x</p>');
const r = await page.evaluate(async (port) => new Promise((resolve) => {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`); ws.binaryType = 'arraybuffer';
  ws.onopen = () => console.log('open');
  ws.onmessage = (e) => { resolve('msg ' + (e.data as ArrayBuffer).byteLength); ws.close(); };
  ws.onclose = (e) => resolve(`close ${e.code} ${e.reason}`);
}), b.port);
console.log(r);
await browser.close(); await b.close(); await server.kill();
