/**
 * What every part of the chat view shares: an element made with its class and
 * text, the shell's elements (shell.ts) that must be there, and the way a
 * part posts to the extension.
 */

import type { FromWebview } from '../shared/messages';

/** Makes an element of the view's document, with a class and text when given. */
export type MakeElement = <K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className?: string,
  text?: string,
) => HTMLElementTagNameMap[K];

/** Posts a message to the extension. */
export type Post = (message: FromWebview) => void;

export function elementMaker(doc: Document): MakeElement {
  return (tag, className, text) => {
    const e = doc.createElement(tag);
    if (className !== undefined) e.className = className;
    if (text !== undefined) e.textContent = text;
    return e;
  };
}

export function required<T extends Element>(doc: Document, selector: string): T {
  const el = doc.querySelector<T>(selector);
  if (el === null) throw new Error(`chat shell is missing ${selector}`);
  return el;
}
