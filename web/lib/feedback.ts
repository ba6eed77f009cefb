/**
 * What the user sees of long operations and failures: a progress bar per operation and errors in
 * plain words with the QMP message (class and text) underneath.
 */
import { QmpError } from '../../src/block/errors.ts';
import { byId, h } from './dom.ts';

/** A progress bar in `container`; `update(done, total)` or indeterminate while total is unknown. */
export class Progress {
  private readonly bar = h('progress', { max: 1 });
  private readonly text = h('span', { class: 'progress-text' });
  readonly element = h('div', { class: 'progress', role: 'status' }, this.bar, this.text);

  constructor(container: HTMLElement, label: string) {
    this.text.textContent = label;
    container.append(this.element);
  }

  update(done: number, total: number, label?: string): void {
    this.bar.max = total;
    this.bar.value = done;
    if (label) this.text.textContent = label;
  }

  label(text: string): void {
    this.text.textContent = text;
  }

  done(): void {
    this.element.remove();
  }
}

/** Shows `err` as "`what`" in plain words, with the QMP class and text underneath. */
export function showError(what: string, err: unknown): void {
  const detail =
    err instanceof QmpError
      ? `${err.errorClass}: ${err.message}`
      : err instanceof Error
        ? err.message
        : String(err);
  const close = h('button', { type: 'button', class: 'link', 'aria-label': 'Dismiss' }, '×');
  const box = h('div', { class: 'error', role: 'alert' }, h('strong', {}, what), close, h('pre', {}, detail));
  close.addEventListener('click', () => box.remove());
  byId('errors').prepend(box);
}

/** Runs `fn`, reporting a failure with showError; returns undefined then. */
export async function attempt<T>(what: string, fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    showError(what, err);
    return undefined;
  }
}

/** A modal yes/no question (a <dialog>: focus stays inside, Esc answers no). */
export function confirmDialog(question: string, yes: string): Promise<boolean> {
  const dialog = h(
    'dialog',
    { class: 'confirm' },
    h('p', {}, question),
    h(
      'form',
      { method: 'dialog' },
      h('button', { value: 'no', type: 'submit' }, 'Cancel'),
      h('button', { value: 'yes', type: 'submit', class: 'danger' }, yes),
    ),
  );
  document.body.append(dialog);
  dialog.showModal();
  return new Promise((resolve) =>
    dialog.addEventListener('close', () => {
      dialog.remove();
      resolve(dialog.returnValue === 'yes');
    }),
  );
}
