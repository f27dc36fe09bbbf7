/**
 * The transcript's rows that are not cards: the user's prompt (with the
 * context sent with it, and its Rewind and Fork actions), Dave's answer as markdown with Copy, Insert and Apply
 * on its code blocks, thinking, a tool use's row (its file opens), an error
 * and a notice.
 */

import type { ChatItem } from '../shared/messages';
import type { CardContext } from './cards';
import { userActions } from './rewindCard';

export type RowItem = Exclude<ChatItem, { kind: 'permission' | 'changes' | 'rewind' }>;

export function fillRow(node: HTMLElement, item: RowItem, cx: Pick<CardContext, 'el' | 'post' | 'markdown'>): void {
  const { el } = cx;
  switch (item.kind) {
    case 'user': {
      const parts = [el('div', 'who', 'You')];
      if (item.context !== undefined && item.context.length > 0) {
        const context = el('div', 'user-context');
        context.setAttribute('aria-label', 'Context sent with it');
        context.append(...item.context.map((label) => el('span', 'chip', label)));
        parts.push(context);
      }
      parts.push(el('div', 'body plain', item.text));
      if (item.images !== undefined && item.images > 0) {
        parts.push(el('div', 'user-images', item.images === 1 ? '1 image attached' : `${item.images} images attached`));
      }
      parts.push(userActions(item, cx));
      node.replaceChildren(...parts);
      break;
    }
    case 'assistant': {
      const body = el('div', 'body markdown');
      body.innerHTML = cx.markdown.render(item.text);
      if (!item.streaming) addCodeActions(body, cx);
      node.replaceChildren(el('div', 'who', 'Dave'), body);
      node.setAttribute('aria-busy', item.streaming ? 'true' : 'false');
      break;
    }
    case 'thinking': {
      const details = el('details');
      details.append(el('summary', undefined, 'Thinking'), el('div', 'body plain', item.text));
      const wasOpen = node.querySelector('details')?.open ?? false;
      details.open = wasOpen;
      node.replaceChildren(details);
      break;
    }
    case 'tool':
      fillToolRow(node, item, cx);
      break;
    case 'error':
      node.replaceChildren(el('span', 'error-label', 'Error: '), el('span', 'error-message', item.message));
      break;
    case 'notice':
      node.replaceChildren(el('span', undefined, item.text));
      break;
  }
}

/** "Write b.txt (11 bytes)": the tool, its summary (which opens its file) and its state. */
function fillToolRow(node: HTMLElement, item: Extract<ChatItem, { kind: 'tool' }>, cx: Pick<CardContext, 'el' | 'post'>): void {
  const { el } = cx;
  const state = !item.done ? 'running' : item.isError ? 'failed' : 'done';
  node.classList.add(state);
  const row = el('div', 'tool-row');
  let summary: HTMLElement = el('span', 'tool-summary', item.summary);
  if (item.filePath !== undefined) {
    const file = item.filePath;
    const open = el('button', 'tool-summary tool-open link', item.summary || file);
    open.type = 'button';
    open.title = `Open ${file}`;
    open.addEventListener('click', () => cx.post({ type: 'openFile', path: file }));
    summary = open;
  }
  row.append(
    el('span', 'tool-name', item.toolName),
    summary,
    el('span', 'tool-state', state === 'running' ? 'running' : state === 'failed' ? 'failed' : ''),
  );
  // A subagent's rows stay nested under this one.
  const children = node.querySelector(':scope > .tool-children');
  node.replaceChildren(...(children !== null ? [row, children] : [row]));
}

/** Copy, Insert at cursor and Apply on every code block of an answer. */
function addCodeActions(body: HTMLElement, cx: Pick<CardContext, 'el' | 'post'>): void {
  const { el, post } = cx;
  for (const pre of body.querySelectorAll('pre')) {
    const code = pre.querySelector('code')?.textContent ?? pre.textContent ?? '';
    const bar = el('div', 'code-actions');
    const copy = el('button', 'copy-code secondary', 'Copy');
    copy.title = 'Copy the code to the clipboard';
    const insert = el('button', 'insert-code secondary', 'Insert');
    insert.title = 'Insert the code at the cursor of the editor';
    insert.setAttribute('aria-label', 'Insert at cursor');
    const apply = el('button', 'apply-code secondary', 'Apply');
    apply.title = 'Apply the code to its file, or to the selection of the editor, after you review it in a diff editor';
    for (const b of [copy, insert, apply]) b.type = 'button';
    const info = pre.getAttribute('data-info') ?? '';
    copy.addEventListener('click', () => post({ type: 'copyCode', code }));
    insert.addEventListener('click', () => post({ type: 'insertCode', code }));
    apply.addEventListener('click', () => post(info === '' ? { type: 'applyCode', code } : { type: 'applyCode', code, info }));
    bar.append(copy, insert, apply);
    const block = el('div', 'code-block');
    pre.replaceWith(block);
    block.append(bar, pre);
  }
}
