/**
 * The model's plan (ExitPlanMode) as a card: the plan as markdown, and
 * Approve, Approve and accept edits, or Keep planning with feedback.
 */

import { permissionOutcomeText, type CardContext, type PermissionItem } from './cards';

export function fillPlanCard(node: HTMLElement, item: PermissionItem, plan: string, cx: CardContext): void {
  const { el } = cx;
  node.setAttribute('role', 'group');
  node.setAttribute('aria-label', "Dave's plan");
  node.classList.add('plan-card');
  const pending = cx.waiting(item);
  const body = el('div', 'plan-body markdown');
  body.innerHTML = cx.markdown.render(plan.trim() === '' ? '_The model sent no plan text._' : plan);
  const children: HTMLElement[] = [el('div', 'permission-message', 'Dave wants to leave plan mode with this plan:'), body];
  if (pending) {
    const buttons = el('div', 'permission-buttons');
    const approve = el('button', 'approve', 'Approve');
    const edits = el('button', 'approve-edits secondary', 'Approve and accept edits');
    edits.title = 'Approve, and let Dave edit files without asking (permission mode acceptEdits)';
    const keep = el('button', 'keep-planning secondary', 'Keep planning');
    for (const b of [approve, edits, keep]) b.type = 'button';
    const feedback = el('input', 'plan-feedback');
    feedback.type = 'text';
    feedback.setAttribute('aria-label', 'Feedback on the plan');
    feedback.placeholder = 'Feedback (optional)';
    feedback.title = 'Optional: what to plan differently; the model is told with Keep planning';
    approve.addEventListener('click', () => cx.answer(item.requestId, 'allow', node));
    edits.addEventListener('click', () => cx.answer(item.requestId, 'allow', node, undefined, { permissionMode: 'acceptEdits' }));
    const back = (): void => cx.answer(item.requestId, 'deny', node, feedback.value);
    keep.addEventListener('click', back);
    feedback.addEventListener('keydown', (event) => {
      if (event.key === 'Enter') {
        event.preventDefault();
        back();
      }
    });
    buttons.append(approve, edits, keep);
    children.push(buttons, feedback);
  } else {
    children.push(el('div', 'permission-outcome', permissionOutcomeText(item)));
  }
  node.replaceChildren(...children);
}
