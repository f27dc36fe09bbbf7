/**
 * Rewind and fork in the transcript (issue 27): the actions on a message of
 * yours ("Rewind to here" with files and conversation, "Rewind chat only"
 * leaving the files as they are, "Fork from here"), and the card of a rewind:
 * which turn the session went back to, the files restored and those kept
 * because they changed since, each with Review.
 */

import type { ChatItem, RewindItem } from '../shared/messages';
import type { CardContext } from './cards';

type UserItem = Extract<ChatItem, { kind: 'user' }>;

/** The bar of actions under a message of yours. */
export function userActions(item: UserItem, cx: Pick<CardContext, 'el' | 'post'>): HTMLDivElement {
  const { el, post } = cx;
  const bar = el('div', 'user-actions');
  const rewind = el('button', 'rewind secondary', 'Rewind to here');
  rewind.title = 'Go back to before this message: the conversation forgets it and what followed, and the files those turns changed are restored';
  const chatOnly = el('button', 'rewind-chat secondary', 'Rewind chat only');
  chatOnly.title = 'Go back to before this message in the conversation only: the files stay as they are';
  const fork = el('button', 'fork secondary', 'Fork from here');
  fork.title = 'A new session holding the conversation up to and with this message; this one stays as it is';
  for (const b of [rewind, chatOnly, fork]) b.type = 'button';
  rewind.addEventListener('click', () => post({ type: 'rewind', itemId: item.id, files: true }));
  chatOnly.addEventListener('click', () => post({ type: 'rewind', itemId: item.id, files: false }));
  fork.addEventListener('click', () => post({ type: 'fork', itemId: item.id }));
  bar.append(rewind, chatOnly, fork);
  return bar;
}

export function fillRewindCard(node: HTMLElement, item: RewindItem, cx: Pick<CardContext, 'el' | 'post'>): void {
  const { el, post } = cx;
  node.setAttribute('role', 'group');
  const headline = rewindHeadline(item);
  node.setAttribute('aria-label', headline);
  const head = el('div', 'changes-head');
  head.append(el('span', 'changes-title', headline));
  const children: HTMLElement[] = [head, el('div', 'rewind-prompt plain', item.prompt)];
  if (item.rows.length > 0) {
    const list = el('ul', 'changes-files');
    for (const row of item.rows) {
      const li = el('li', `changes-file${row.conflict !== undefined ? ' conflict' : ' restored'}`);
      const review = el('button', 'review secondary', 'Review');
      review.type = 'button';
      review.setAttribute('aria-label', `Review ${row.label}`);
      review.title = `Open what the rewound turns changed in ${row.label}`;
      review.addEventListener('click', () => post({ type: 'reviewRewind', itemId: item.id, path: row.path }));
      li.append(el('span', 'changes-path', row.label), el('span', 'changes-state', row.conflict !== undefined ? 'kept' : 'restored'), review);
      if (row.conflict !== undefined) li.append(el('div', 'changes-conflict', row.conflict));
      list.append(li);
    }
    children.push(list);
  }
  children.push(el('div', 'changes-note', rewindNote(item)));
  node.replaceChildren(...children);
}

export function rewindHeadline(item: RewindItem): string {
  return `Rewound to before turn ${item.turn}${item.files ? '' : ' (conversation only)'}`;
}

function rewindNote(item: RewindItem): string {
  if (!item.files) return 'The files were left as they are.';
  const restored = item.rows.filter((r) => r.conflict === undefined).length;
  const kept = item.rows.length - restored;
  if (item.rows.length === 0) return 'The rewound turns changed no files.';
  const parts = [restored === 1 ? '1 file restored' : `${restored} files restored`];
  if (kept > 0) parts.push(`${kept === 1 ? '1 file' : `${kept} files`} kept: changed since, so not overwritten`);
  return `${parts.join('; ')}.`;
}
