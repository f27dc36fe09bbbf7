/**
 * The jsdom harness of the webview tests (webview.test.ts, webviewCards.test.ts):
 * the shell with a ChatApp that records what it posts, the view's state, a
 * button by its accessible name, and the check that rendered model text is inert.
 */

import assert from 'node:assert/strict';

import { JSDOM } from 'jsdom';

import type { ChatItem, ChatViewState, FromWebview } from '../src/shared/messages';
import { ChatApp } from '../src/webview/chatApp';
import { createMarkdownRenderer } from '../src/webview/markdown';
import { SHELL_BODY } from '../src/webview/shell';

export interface Harness {
  dom: JSDOM;
  doc: Document;
  app: ChatApp;
  posted: FromWebview[];
  /** Runs the deferred markdown renders, as the next animation frame would. */
  frame(): void;
}

export function harness(): Harness {
  const dom = new JSDOM(`<!DOCTYPE html><html><body>${SHELL_BODY}</body></html>`, { pretendToBeVisual: true });
  const doc = dom.window.document;
  const posted: FromWebview[] = [];
  const queue: Array<() => void> = [];
  const renderer = createMarkdownRenderer(dom.window as unknown as Window);
  const app = new ChatApp(doc, { postMessage: (m) => posted.push(m) }, renderer, {
    schedule: (fn) => queue.push(fn),
  });
  app.start();
  return {
    dom,
    doc,
    app,
    posted,
    frame: () => {
      for (const fn of queue.splice(0)) fn();
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
