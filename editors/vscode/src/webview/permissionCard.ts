/**
 * The permission card of a tool use: what the tool would do, the proposal's
 * Show diff, the rule that Allow always would add, and Allow, Allow always and
 * Deny (with an optional reason); once answered, how it ended.
 */

import { permissionOutcomeText, type CardContext, type PermissionItem } from './cards';

export function fillPermissionCard(node: HTMLElement, item: PermissionItem, cx: CardContext): void {
  const { el } = cx;
  node.setAttribute('role', 'group');
  node.setAttribute('aria-label', `Permission request: ${item.toolName}`);
  const children: HTMLElement[] = [el('div', 'permission-message', item.message)];
  if (item.detail !== '') children.push(el('pre', 'permission-detail', item.detail));
  const pending = cx.waiting(item);
  const review = item.review;
  if (pending && review !== undefined) {
    const line = el('div', 'permission-review', review.note);
    if (review.viewable) {
      const show = el('button', 'show-diff secondary', 'Show diff');
      show.type = 'button';
      show.title = `Open the diff of ${review.file}`;
      show.addEventListener('click', () => cx.post({ type: 'openProposal', requestId: item.requestId }));
      line.append(' ', show);
    }
    children.push(line);
  }
  const offer = item.allowAlways;
  if (pending && offer !== undefined) {
    // Say exactly what "Allow always" allows before it is chosen.
    const line = el('div', 'permission-rule', 'Allow always adds the rule ');
    line.append(el('code', undefined, offer.rule), ' for this session.');
    children.push(line);
  }
  if (pending) {
    const buttons = el('div', 'permission-buttons');
    const reason = el('input', 'permission-reason');
    reason.type = 'text';
    reason.setAttribute('aria-label', 'Reason for denying');
    reason.placeholder = 'Reason for Deny (optional)';
    reason.title = 'Optional: why you deny it; the model is told';
    const allow = el('button', 'allow', 'Allow');
    if (review?.editable === true) allow.title = 'Accept the right side of the diff editor, with your edits';
    const always = el(
      'button',
      'allow-always secondary',
      offer !== undefined && offer.label !== '' ? `Allow always: ${offer.label}` : 'Allow always',
    );
    if (offer !== undefined) always.title = `Adds the rule ${offer.rule} for this session`;
    const deny = el('button', 'deny secondary', 'Deny');
    for (const b of [allow, always, deny]) b.type = 'button';
    allow.addEventListener('click', () => cx.answer(item.requestId, 'allow', node));
    always.addEventListener('click', () => cx.answer(item.requestId, 'allowAlways', node));
    deny.addEventListener('click', () => cx.answer(item.requestId, 'deny', node, reason.value));
    reason.addEventListener('keydown', (event) => {
      if (event.key === 'Enter') {
        event.preventDefault();
        cx.answer(item.requestId, 'deny', node, reason.value);
      }
    });
    buttons.append(allow, always, deny);
    children.push(buttons, reason);
  } else {
    children.push(el('div', 'permission-outcome', permissionOutcomeText(item)));
  }
  node.replaceChildren(...children);
}
