/**
 * The model's questions (AskUserQuestion) as a card: each question's header and
 * text, its options as buttons (one pick answers a single question at once)
 * or, for multiSelect, checkboxes, and a field for the user's own words;
 * Submit sends them all, Decline denies.
 */

import type { Question } from '../shared/messages';
import { permissionOutcomeText, type CardContext, type PermissionItem } from './cards';

export function fillQuestionCard(node: HTMLElement, item: PermissionItem, questions: Question[], cx: CardContext): void {
  const { el } = cx;
  node.setAttribute('role', 'group');
  node.setAttribute('aria-label', 'Dave asks');
  node.classList.add('question-card');
  const pending = cx.waiting(item);
  const children: HTMLElement[] = [];
  const chosen = new Map<string, string>();
  const readers: Array<() => [string, string | string[]] | undefined> = [];
  const single = questions.length === 1 && questions[0]?.multiSelect !== true;
  const submit = (): void => {
    const answers: Record<string, string | string[]> = {};
    for (const read of readers) {
      const pair = read();
      if (pair !== undefined) answers[pair[0]] = pair[1];
    }
    cx.answer(item.requestId, 'allow', node, undefined, { answers });
  };
  questions.forEach((q, qi) => {
    const box = el('fieldset', 'question');
    const legend = el('legend', 'question-text');
    if (q.header !== undefined) legend.append(el('span', 'question-header', q.header), ' ');
    legend.append(q.question);
    box.append(legend);
    if (!pending) {
      children.push(box);
      return;
    }
    const options = q.options ?? [];
    const checks: HTMLInputElement[] = [];
    const list = el('div', 'question-options');
    options.forEach((option, oi) => {
      if (q.multiSelect === true) {
        const label = el('label', 'question-check');
        const check = el('input');
        check.type = 'checkbox';
        check.value = option.label;
        check.id = `${item.id}-q${qi}-o${oi}`;
        checks.push(check);
        label.append(check, ` ${option.label}`);
        if (option.description) label.append(el('span', 'option-description', ` — ${option.description}`));
        list.append(label);
      } else {
        const button = el('button', 'question-option secondary', option.label);
        button.type = 'button';
        if (option.description) button.title = option.description;
        button.setAttribute('aria-pressed', 'false');
        button.addEventListener('click', () => {
          chosen.set(q.question, option.label);
          for (const b of list.querySelectorAll('button')) b.setAttribute('aria-pressed', b === button ? 'true' : 'false');
          if (single) submit();
        });
        list.append(button);
        if (option.description) list.append(el('span', 'option-description', option.description));
      }
    });
    const own = el('input', 'question-own');
    own.type = 'text';
    own.setAttribute('aria-label', `Your own answer to: ${q.question}`);
    own.placeholder = 'Or type your own answer';
    own.addEventListener('keydown', (event) => {
      if (event.key === 'Enter') {
        event.preventDefault();
        submit();
      }
    });
    box.append(list, own);
    readers.push(() => {
      const typed = own.value.trim();
      if (typed !== '') return [q.question, typed];
      if (q.multiSelect === true) {
        const picked = checks.filter((c) => c.checked).map((c) => c.value);
        return picked.length > 0 ? [q.question, picked] : undefined;
      }
      const pick = chosen.get(q.question);
      return pick === undefined ? undefined : [q.question, pick];
    });
    children.push(box);
  });
  if (pending) {
    const buttons = el('div', 'permission-buttons');
    const send = el('button', 'submit-answers', 'Submit');
    const decline = el('button', 'decline secondary', 'Decline');
    for (const b of [send, decline]) b.type = 'button';
    send.addEventListener('click', submit);
    decline.addEventListener('click', () => cx.answer(item.requestId, 'deny', node));
    buttons.append(send, decline);
    children.push(buttons);
  } else {
    children.push(el('div', 'permission-outcome', permissionOutcomeText(item)));
  }
  node.replaceChildren(...children);
}
