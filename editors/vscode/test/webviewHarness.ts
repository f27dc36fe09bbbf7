/**
 * The jsdom harness of the webview tests (webview, webviewCards, webviewPolish,
 * webviewTurnState): the shell with a ChatApp that records what it posts, with
 * every timer of ChatAppOptions in the test's hands (markdown renders, the `@`
 * debounce, the retry countdown's clock), what would scroll into view, typing
 * and keys in the message box, the view's state, a button by its accessible
 * name, and the check that rendered model text is inert.
 */

import assert from 'node:assert/strict';

import { JSDOM } from 'jsdom';

import type { ChatItem, ChatViewState, FromWebview } from '../src/shared/messages';
import { ChatApp } from '../src/webview/chatApp';
import { createMarkdownRenderer } from '../src/webview/markdown';
import { SHELL_BODY } from '../src/webview/shell';

export interface HarnessOptions {
  /** Markdown renders run at once; by default they wait for `frame()`, as for the next animation frame. */
  renderNow?: boolean;
}

export interface Harness {
  dom: JSDOM;
  doc: Document;
  app: ChatApp;
  posted: FromWebview[];
  /** Runs the deferred markdown renders, as the next animation frame would. */
  frame(): void;
  /** Runs the debounced `@` queries now. */
  debounced(): void;
  /** Moves the countdown's clock on and runs its ticks. */
  advance(ms: number): void;
  /** The nodes scrollIntoView was called on (jsdom has no layout). */
  revealed: Element[];
  /** The status line's text. */
  status(): string;
  /** The message box. */
  input: HTMLTextAreaElement;
  /** Types `text` into the message box (the caret at its end). */
  type(text: string): void;
  /** A keydown in the message box. */
  key(init: KeyboardEventInit): void;
}

export function harness(options: HarnessOptions = {}): Harness {
  const dom = new JSDOM(`<!DOCTYPE html><html><body>${SHELL_BODY}</body></html>`, { pretendToBeVisual: true });
  const doc = dom.window.document;
  const posted: FromWebview[] = [];
  const frames: Array<() => void> = [];
  const waiting: Array<() => void> = [];
  const revealed: Element[] = [];
  dom.window.HTMLElement.prototype.scrollIntoView = function (this: Element) {
    revealed.push(this);
  };
  let now = 1_000_000;
  const ticks = new Set<() => void>();
  const app = new ChatApp(doc, { postMessage: (m) => posted.push(m) }, createMarkdownRenderer(dom.window as unknown as Window), {
    schedule: options.renderNow === true ? (fn) => fn() : (fn) => frames.push(fn),
    debounce: (fn) => {
      waiting.push(fn);
      return () => {
        const at = waiting.indexOf(fn);
        if (at >= 0) waiting.splice(at, 1);
      };
    },
    readImage: (file) => Promise.resolve(`data:${file.type};base64,iVBORw0K`),
    every: (fn) => {
      ticks.add(fn);
      return () => ticks.delete(fn);
    },
    now: () => now,
  });
  app.start();
  const input = doc.querySelector<HTMLTextAreaElement>('#message')!;
  return {
    dom,
    doc,
    app,
    posted,
    revealed,
    input,
    frame: () => {
      for (const fn of frames.splice(0)) fn();
    },
    debounced: () => {
      for (const fn of waiting.splice(0)) fn();
    },
    advance: (ms) => {
      for (let left = ms; left > 0; left -= 1000) {
        now += Math.min(1000, left);
        for (const fn of [...ticks]) fn();
      }
    },
    status: () => doc.querySelector('#status')?.textContent ?? '',
    type: (text) => {
      input.value = text;
      input.setSelectionRange(text.length, text.length);
      input.dispatchEvent(new dom.window.Event('input', { bubbles: true }));
    },
    key: (init) => {
      input.dispatchEvent(new dom.window.KeyboardEvent('keydown', { bubbles: true, cancelable: true, ...init }));
    },
  };
}

export function state(items: ChatItem[] = [], extra: Partial<ChatViewState> = {}): ChatViewState {
  return {
    sessions: [{ id: 's1', title: 'First', busy: false }],
    activeSessionId: 's1',
    items,
    busy: false,
    status: '',
    ...extra,
  };
}

export function buttonsNamed(root: ParentNode, name: string): HTMLButtonElement[] {
  return [...root.querySelectorAll('button')].filter(
    (b) => (b.getAttribute('aria-label') ?? b.textContent ?? '').trim() === name,
  );
}

/** The one button named `name` under `root`. */
export function button(root: ParentNode, name: string): HTMLButtonElement {
  const found = buttonsNamed(root, name);
  assert.equal(found.length, 1, `one button named ${name} in ${(root as Element).outerHTML ?? 'the document'}`);
  return found[0];
}

export function assertInert(root: Element): void {
  assert.equal(root.querySelectorAll('script, iframe, object, embed, img, style, form').length, 0, root.innerHTML);
  for (const el of root.querySelectorAll('*')) {
    for (const attr of el.getAttributeNames()) {
      assert.ok(!attr.toLowerCase().startsWith('on'), `event handler attribute ${attr} in ${el.outerHTML}`);
    }
    for (const attr of ['href', 'src', 'action', 'xlink:href']) {
      const value = el.getAttribute(attr);
      if (value !== null) assert.match(value, /^(https?:|mailto:)/i, `unsafe ${attr}: ${el.outerHTML}`);
    }
  }
}
