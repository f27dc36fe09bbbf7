/**
 * The "N files changed" card of a turn: its files with their counts, Review
 * (the turn's diffs) and Undo, of the whole turn or of one file, and how the
 * last Undo went.
 */

import type { ChatItem } from '../shared/messages';
import type { CardContext } from './cards';

export type ChangesItem = Extract<ChatItem, { kind: 'changes' }>;

export function fillChangesCard(node: HTMLElement, item: ChangesItem, cx: Pick<CardContext, 'el' | 'post'>): void {
  const { el, post } = cx;
  node.setAttribute('role', 'group');
  const headline = changesHeadline(item);
  node.setAttribute('aria-label', headline);
  const head = el('div', 'changes-head');
  const open = item.files.filter((f) => f.reverted !== true);
  const review = el('button', 'review secondary', 'Review');
  review.type = 'button';
  review.title = 'Open the diffs of this turn';
  review.addEventListener('click', () => post({ type: 'reviewChanges', itemId: item.id }));
  const undo = el('button', 'undo secondary', 'Undo');
  undo.type = 'button';
  undo.title = 'Restore every file as it was before this turn';
  undo.disabled = open.length === 0;
  undo.addEventListener('click', () => post({ type: 'undoChanges', itemId: item.id }));
  head.append(el('span', 'changes-title', headline), review, undo);
  const list = el('ul', 'changes-files');
  for (const file of item.files) {
    const row = el('li', `changes-file ${file.status}${file.reverted === true ? ' reverted' : ''}`);
    const counts = file.binary === true ? 'binary' : `+${file.added} −${file.removed}`;
    row.append(el('span', 'changes-path', file.label), el('span', 'changes-status', file.status), el('span', 'changes-counts', counts));
    if (file.reverted === true) {
      row.append(el('span', 'changes-state', 'undone'));
    } else {
      const one = el('button', 'undo-file secondary', 'Undo');
      one.type = 'button';
      one.setAttribute('aria-label', `Undo ${file.label}`);
      one.title = `Restore ${file.label} as it was before this turn`;
      one.addEventListener('click', () => post({ type: 'undoChanges', itemId: item.id, path: file.path }));
      row.append(one);
    }
    if (file.conflict !== undefined) row.append(el('div', 'changes-conflict', file.conflict));
    list.append(row);
  }
  const children: HTMLElement[] = [head, list];
  if (item.note !== undefined && item.note !== '') children.push(el('div', 'changes-note', item.note));
  node.replaceChildren(...children);
}

export function changesHeadline(item: ChangesItem): string {
  const n = item.files.length;
  return n === 1 ? '1 file changed' : `${n} files changed`;
}
