/**
 * A guest's serial console as the page sees it: the bytes v86 emits one by one, decoded as UTF-8
 * and kept as a transcript of lines, with waiters for a line matching a pattern (how a test or
 * the demo knows the guest got somewhere).
 */

export type LineListener = (line: string) => void;

export class SerialConsole {
  /** Every finished line so far, without its line ending. */
  readonly lines: string[] = [];
  private readonly decoder = new TextDecoder();
  private partial = '';
  private readonly listeners = new Set<LineListener>();

  /** One byte from the guest. */
  byte(b: number): void {
    this.partial += this.decoder.decode(Uint8Array.of(b), { stream: true });
    if (b !== 0x0a) return;
    const line = this.partial.replace(/\r?\n$/, '');
    this.partial = '';
    this.lines.push(line);
    for (const listener of this.listeners) listener(line);
  }

  /** The whole output so far, the unfinished last line included. */
  get text(): string {
    return this.lines.map((l) => `${l}\n`).join('') + this.partial;
  }

  /** Calls `listener` with every line finished from now on; returns the function that stops it. */
  onLine(listener: LineListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * The first line (already seen or still to come) that `pattern` matches. Rejects after
   * `timeoutMs` with the last lines of output in the message, so a failed wait shows how far the
   * guest got.
   */
  waitFor(pattern: RegExp, timeoutMs: number): Promise<string> {
    const seen = this.lines.find((l) => pattern.test(l));
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const stop = this.onLine((line) => {
        if (!pattern.test(line)) return;
        clearTimeout(timer);
        stop();
        resolve(line);
      });
      const timer = setTimeout(() => {
        stop();
        const tail = this.text.split('\n').slice(-15).join('\n');
        reject(new Error(`no serial line matched ${pattern} within ${timeoutMs} ms; last output:\n${tail}`));
      }, timeoutMs);
    });
  }
}
