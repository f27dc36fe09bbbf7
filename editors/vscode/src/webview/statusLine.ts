/**
 * The status line under the transcript. A `retrying` status counts down to
 * the retry, every second: "Retrying in 8 s (attempt 2 of 10): API Error 500".
 */

import { retryText, type RetryInfo } from '../shared/messages';

export class StatusLine {
  /** The retry countdown's stop, while a `retrying` status shows. */
  private stopCountdown: (() => void) | undefined;

  constructor(
    private readonly line: HTMLElement,
    /** Runs `fn` every `ms`; returns a stop. */
    private readonly every: (fn: () => void, ms: number) => () => void,
    private readonly now: () => number,
  ) {}

  /** The extension's status, counting down when it is a retry. */
  set(text: string, retry?: RetryInfo): void {
    this.stopCountdown?.();
    this.stopCountdown = undefined;
    this.line.classList.toggle('retrying', retry !== undefined);
    if (retry === undefined) {
      this.line.textContent = text;
      return;
    }
    const due = this.now() + retry.retryInMs;
    const tick = (): void => {
      const left = due - this.now();
      this.line.textContent = retryText(retry, left);
      if (left <= 0) {
        this.stopCountdown?.();
        this.stopCountdown = undefined;
      }
    };
    tick();
    if (retry.retryInMs > 0) this.stopCountdown = this.every(tick, 1000);
  }

  /** The turn ended: any countdown stops, and the line keeps what it says. */
  settle(): void {
    this.set(this.line.textContent ?? '');
  }

  /** A line of the view's own (an image it cannot take), until the next status. */
  note(text: string): void {
    this.line.textContent = text;
  }
}
