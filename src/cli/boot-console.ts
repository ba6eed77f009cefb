/**
 * The guest's serial console on the terminal, for `blockgraph boot`: output bytes decoded and
 * written out, complete lines offered to a watcher (`--until`); input from a terminal in raw
 * mode, with QEMU's -nographic escape `Ctrl-A x` to quit (`Ctrl-A Ctrl-A` sends a Ctrl-A).
 */

const CTRL_A = 0x01;

/** Collects serial output: text goes to `out` as it comes, each finished line to `onLine`. */
export class SerialOutput {
  private readonly decoder = new TextDecoder();
  private line: number[] = [];
  private pending: number[] = [];
  private scheduled = false;

  constructor(
    private readonly out: (text: string) => void,
    private readonly onLine: (line: string) => void,
  ) {}

  /** One byte from the guest. Output is batched per event-loop turn (bytes arrive one by one). */
  byte(b: number): void {
    this.pending.push(b);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
    if (b !== 0x0a) {
      this.line.push(b);
      return;
    }
    const text = new TextDecoder().decode(new Uint8Array(this.line)).replace(/\r$/, '');
    this.line = [];
    this.onLine(text);
  }

  /** No partial line is pending: the next output starts a line. */
  get atLineStart(): boolean {
    return this.line.length === 0;
  }

  /** Writes out what arrived since the last flush. */
  flush(): void {
    this.scheduled = false;
    if (this.pending.length === 0) return;
    this.out(this.decoder.decode(new Uint8Array(this.pending), { stream: true }));
    this.pending = [];
  }
}

/**
 * Forwards a terminal's keystrokes to the guest: puts `stdin` in raw mode and calls `send` with
 * the bytes, or `quit` on Ctrl-A x. Returns the function that restores the terminal.
 */
export function forwardTerminal(
  stdin: NodeJS.ReadStream,
  send: (bytes: Uint8Array) => void,
  quit: () => void,
): () => void {
  let escape = false;
  const onData = (chunk: Buffer) => {
    const bytes: number[] = [];
    for (const b of chunk) {
      if (escape) {
        escape = false;
        if (b === 0x78 /* x */) return quit();
        if (b === CTRL_A) bytes.push(b);
        continue;
      }
      if (b === CTRL_A) escape = true;
      else bytes.push(b);
    }
    if (bytes.length > 0) send(new Uint8Array(bytes));
  };
  stdin.setRawMode(true);
  stdin.on('data', onData);
  stdin.resume();
  return () => {
    stdin.off('data', onData);
    stdin.setRawMode(false);
    stdin.pause();
  };
}

/**
 * Forwards input that is not a terminal (a pipe, a file) to the guest byte for byte, as
 * qemu-system's `-serial stdio` does. Returns the function that stops forwarding.
 */
export function forwardPipe(stdin: NodeJS.ReadStream, send: (bytes: Uint8Array) => void): () => void {
  const onData = (chunk: Buffer) => send(new Uint8Array(chunk));
  stdin.on('data', onData);
  return () => {
    stdin.off('data', onData);
    stdin.pause();
  };
}
