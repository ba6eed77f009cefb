/**
 * The serial terminal: the guest's first serial port shown in a focusable <pre>; keys typed there
 * go to the guest (Enter as CR, Backspace as DEL, Ctrl+letter as its control code), as a terminal
 * emulator on ttyS0 would send them. Escape sequences in the output are dropped, backspaces applied.
 */
import type { BrowserMachine } from '../../src/frontends/browser/machine.ts';
import { byId } from '../lib/dom.ts';

const KEYS: Record<string, string> = {
  Enter: '\r',
  Backspace: '\x7f',
  Tab: '\t',
  Escape: '\x1b',
  ArrowUp: '\x1b[A',
  ArrowDown: '\x1b[B',
  ArrowRight: '\x1b[C',
  ArrowLeft: '\x1b[D',
};

/** The most output kept on screen. */
const MAX_CHARS = 200_000;

export class Terminal {
  private readonly screen = byId<HTMLPreElement>('terminal');
  private machine: BrowserMachine | undefined;
  private readonly decoder = new TextDecoder();
  private escape = '';
  private text = '';
  private rendering = false;

  constructor() {
    this.screen.addEventListener('keydown', (e) => this.key(e));
    this.screen.addEventListener('paste', (e) => {
      e.preventDefault();
      this.machine?.send(e.clipboardData?.getData('text').replace(/\r?\n/g, '\r') ?? '');
    });
  }

  /** Shows `machine`'s serial output from now on and sends it the keys typed here. */
  attach(machine: BrowserMachine): void {
    this.machine = machine;
    this.text = '';
    this.render();
    machine.emulator.add_listener('serial0-output-byte', (b: number) => this.output(b));
  }

  detach(): void {
    this.machine = undefined;
  }

  private key(e: KeyboardEvent): void {
    if (!this.machine || e.altKey || e.metaKey) return;
    let text: string | undefined;
    if (e.ctrlKey && /^[a-z]$/i.test(e.key))
      text = String.fromCharCode(e.key.toUpperCase().charCodeAt(0) - 64);
    else if (!e.ctrlKey) text = KEYS[e.key] ?? (e.key.length === 1 ? e.key : undefined);
    // Tab stays a key for the guest only while the terminal has focus; Shift+Tab leaves it.
    if (text === undefined || (e.key === 'Tab' && e.shiftKey)) return;
    e.preventDefault();
    this.machine.send(text);
  }

  private output(b: number): void {
    const char = this.decoder.decode(Uint8Array.of(b), { stream: true });
    if (this.escape || char === '\x1b') {
      this.escape += char;
      // CSI sequences end with a letter; anything else ends after one character.
      if (this.escape.length > 1 && (/[A-Za-z~]$/.test(this.escape) || this.escape[1] !== '['))
        this.escape = '';
      return;
    }
    if (char === '\b') this.text = this.text.slice(0, -1);
    else if (char !== '\r' && char !== '\x07') this.text += char;
    if (this.text.length > MAX_CHARS) this.text = this.text.slice(-MAX_CHARS / 2);
    // One repaint per batch of bytes, not per byte.
    if (!this.rendering) {
      this.rendering = true;
      setTimeout(() => this.render(), 30);
    }
  }

  private render(): void {
    this.rendering = false;
    this.screen.textContent = this.text;
    this.screen.scrollTop = this.screen.scrollHeight;
  }
}
