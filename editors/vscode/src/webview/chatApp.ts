/**
 * The chat view inside the webview: renders the items the extension sends,
 * streams text into the open assistant message, and turns clicks and keys into
 * typed messages back. It holds no conversation state of its own beyond what
 * is on screen; the extension resends everything on `ready`.
 */

import type {
  ChatItem,
  ChatViewState,
  FromWebview,
  PermissionAnswer,
  SessionSummary,
  ToWebview,
} from '../shared/messages';
import type { MarkdownRenderer } from './markdown';

export interface WebviewHost {
  postMessage(message: FromWebview): void;
}

export interface ChatAppOptions {
  /** Defers markdown re-rendering while tokens stream (requestAnimationFrame in the webview). */
  schedule?: (fn: () => void) => void;
}

function required<T extends Element>(doc: Document, selector: string): T {
  const el = doc.querySelector<T>(selector);
  if (el === null) throw new Error(`chat shell is missing ${selector}`);
  return el;
}

export class ChatApp {
  private items = new Map<string, ChatItem>();
  private nodes = new Map<string, HTMLElement>();
  private dirty = new Set<string>();
  private renderScheduled = false;
  private busy = false;
  private activeSessionId: string | undefined;
  /** Permission cards already answered here: each posts at most once. */
  private answered = new Set<string>();

  private readonly transcript: HTMLElement;
  private readonly input: HTMLTextAreaElement;
  private readonly sendButton: HTMLButtonElement;
  private readonly stopButton: HTMLButtonElement;
  private readonly statusLine: HTMLElement;
  private readonly sessionSelect: HTMLSelectElement;
  private readonly deleteButton: HTMLButtonElement;
  private readonly schedule: (fn: () => void) => void;

  constructor(
    private readonly doc: Document,
    private readonly host: WebviewHost,
    private readonly markdown: MarkdownRenderer,
    options: ChatAppOptions = {},
  ) {
    this.schedule = options.schedule ?? ((fn) => setTimeout(fn, 16));
    this.transcript = required(doc, '#transcript');
    this.input = required(doc, '#message');
    this.sendButton = required(doc, '#send');
    this.stopButton = required(doc, '#stop');
    this.statusLine = required(doc, '#status');
    this.sessionSelect = required(doc, '#session-select');
    this.deleteButton = required(doc, '#delete-session');
    const newButton = required<HTMLButtonElement>(doc, '#new-session');
    const composer = required<HTMLFormElement>(doc, '#composer');

    composer.addEventListener('submit', (event) => {
      event.preventDefault();
      this.send();
    });
    this.input.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing && !event.altKey && !event.ctrlKey && !event.metaKey) {
        event.preventDefault();
        this.send();
      }
    });
    this.stopButton.addEventListener('click', () => {
      if (this.busy) this.host.postMessage({ type: 'stop' });
    });
    newButton.addEventListener('click', () => this.host.postMessage({ type: 'newSession' }));
    this.deleteButton.addEventListener('click', () => {
      if (this.activeSessionId !== undefined) {
        this.host.postMessage({ type: 'deleteSession', sessionId: this.activeSessionId });
      }
    });
    this.sessionSelect.addEventListener('change', () => {
      const id = this.sessionSelect.value;
      if (id !== '' && id !== this.activeSessionId) this.host.postMessage({ type: 'switchSession', sessionId: id });
    });
    this.setBusy(false);
  }

  /** Tells the extension the view is ready for its state. */
  start(): void {
    this.host.postMessage({ type: 'ready' });
  }

  handle(message: ToWebview): void {
    switch (message.type) {
      case 'state':
        this.setState(message.state);
        break;
      case 'sessions':
        this.setSessions(message.sessions, message.activeSessionId);
        break;
      case 'append':
        this.followBottom(() => this.upsert(message.item));
        break;
      case 'update':
        this.followBottom(() => this.upsert(message.item));
        break;
      case 'appendText': {
        const item = this.items.get(message.itemId);
        if (item !== undefined && (item.kind === 'assistant' || item.kind === 'thinking')) {
          item.text += message.text;
          this.markDirty(item.id);
        }
        break;
      }
      case 'busy':
        this.setBusy(message.busy);
        break;
      case 'status':
        this.statusLine.textContent = message.text;
        break;
      case 'focusInput':
        if (message.text !== undefined) this.input.value = message.text;
        this.input.focus();
        break;
    }
  }

  /** Renders any streamed text still waiting for the next frame. */
  flush(): void {
    this.renderScheduled = false;
    if (this.dirty.size === 0) return;
    const ids = [...this.dirty];
    this.dirty.clear();
    this.followBottom(() => {
      for (const id of ids) {
        const item = this.items.get(id);
        const node = this.nodes.get(id);
        if (item !== undefined && node !== undefined) this.fill(node, item);
      }
    });
  }

  private setState(state: ChatViewState): void {
    this.items.clear();
    this.nodes.clear();
    this.dirty.clear();
    this.answered.clear();
    this.transcript.replaceChildren();
    for (const item of state.items) this.upsert(item);
    this.setSessions(state.sessions, state.activeSessionId);
    this.setBusy(state.busy);
    this.statusLine.textContent = state.status;
    this.transcript.scrollTop = this.transcript.scrollHeight;
  }

  private setSessions(sessions: SessionSummary[], activeSessionId: string | undefined): void {
    this.activeSessionId = activeSessionId;
    const options = sessions.map((s) => {
      const option = this.doc.createElement('option');
      option.value = s.id;
      option.textContent = `${s.title}${s.busy ? ' (working)' : ''}${s.resumed ? ' (resumed)' : ''}`;
      option.selected = s.id === activeSessionId;
      return option;
    });
    this.sessionSelect.replaceChildren(...options);
    if (activeSessionId !== undefined) this.sessionSelect.value = activeSessionId;
    this.deleteButton.disabled = activeSessionId === undefined;
  }

  private setBusy(busy: boolean): void {
    this.busy = busy;
    this.sendButton.hidden = busy;
    this.stopButton.hidden = !busy;
    this.stopButton.disabled = !busy;
    this.transcript.setAttribute('aria-busy', busy ? 'true' : 'false');
    if (!busy) this.flush();
  }

  private send(): void {
    const text = this.input.value;
    if (this.busy || text.trim() === '') return;
    this.input.value = '';
    this.host.postMessage({ type: 'send', text });
  }

  private upsert(item: ChatItem): void {
    const previous = this.items.get(item.id);
    if (
      item.kind === 'permission' &&
      item.state === 'pending' &&
      this.answered.has(item.requestId) &&
      previous?.kind === 'permission'
    ) {
      // Answered here already: keep the closed card until the request resolves.
      item = { ...item, state: 'answered', outcome: previous.outcome };
    }
    this.items.set(item.id, { ...item });
    let node = this.nodes.get(item.id);
    if (node === undefined) {
      node = this.doc.createElement('div');
      node.dataset.id = item.id;
      this.nodes.set(item.id, node);
      this.transcript.appendChild(node);
    }
    this.dirty.delete(item.id);
    this.fill(node, this.items.get(item.id)!);
  }

  private markDirty(id: string): void {
    this.dirty.add(id);
    if (!this.renderScheduled) {
      this.renderScheduled = true;
      this.schedule(() => this.flush());
    }
  }

  /** Keeps the transcript pinned to the bottom only when it already was. */
  private followBottom(change: () => void): void {
    const t = this.transcript;
    const atBottom = t.scrollHeight - t.scrollTop - t.clientHeight < 40;
    change();
    if (atBottom) t.scrollTop = t.scrollHeight;
  }

  private el<K extends keyof HTMLElementTagNameMap>(tag: K, className?: string, text?: string): HTMLElementTagNameMap[K] {
    const e = this.doc.createElement(tag);
    if (className !== undefined) e.className = className;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  private fill(node: HTMLElement, item: ChatItem): void {
    node.className = `item ${item.kind}`;
    switch (item.kind) {
      case 'user': {
        node.replaceChildren(this.el('div', 'who', 'You'), this.el('div', 'body plain', item.text));
        break;
      }
      case 'assistant': {
        const body = this.el('div', 'body markdown');
        body.innerHTML = this.markdown.render(item.text);
        node.replaceChildren(this.el('div', 'who', 'Dave'), body);
        node.setAttribute('aria-busy', item.streaming ? 'true' : 'false');
        break;
      }
      case 'thinking': {
        const details = this.el('details');
        details.append(this.el('summary', undefined, 'Thinking'), this.el('div', 'body plain', item.text));
        const wasOpen = node.querySelector('details')?.open ?? false;
        details.open = wasOpen;
        node.replaceChildren(details);
        break;
      }
      case 'tool': {
        const state = !item.done ? 'running' : item.isError ? 'failed' : 'done';
        node.classList.add(state);
        const row = this.el('div', 'tool-row');
        row.append(
          this.el('span', 'tool-name', item.toolName),
          this.el('span', 'tool-summary', item.summary),
          this.el('span', 'tool-state', state === 'running' ? 'running' : state === 'failed' ? 'failed' : ''),
        );
        node.replaceChildren(row);
        break;
      }
      case 'permission':
        this.fillPermission(node, item);
        break;
      case 'error':
        node.replaceChildren(this.el('span', 'error-label', 'Error: '), this.el('span', 'error-message', item.message));
        break;
      case 'notice':
        node.replaceChildren(this.el('span', undefined, item.text));
        break;
      case 'changes':
        this.fillChanges(node, item);
        break;
    }
  }

  /** "N files changed", its files, Review and Undo (all, or one file). */
  private fillChanges(node: HTMLElement, item: Extract<ChatItem, { kind: 'changes' }>): void {
    node.setAttribute('role', 'group');
    const headline = changesHeadline(item);
    node.setAttribute('aria-label', headline);
    const head = this.el('div', 'changes-head');
    const open = item.files.filter((f) => f.reverted !== true);
    const review = this.el('button', 'review secondary', 'Review');
    review.type = 'button';
    review.title = 'Open the diffs of this turn';
    review.addEventListener('click', () => this.host.postMessage({ type: 'reviewChanges', itemId: item.id }));
    const undo = this.el('button', 'undo secondary', 'Undo');
    undo.type = 'button';
    undo.title = 'Restore every file as it was before this turn';
    undo.disabled = open.length === 0;
    undo.addEventListener('click', () => this.host.postMessage({ type: 'undoChanges', itemId: item.id }));
    head.append(this.el('span', 'changes-title', headline), review, undo);
    const list = this.el('ul', 'changes-files');
    for (const file of item.files) {
      const row = this.el('li', `changes-file ${file.status}${file.reverted === true ? ' reverted' : ''}`);
      const counts = file.binary === true ? 'binary' : `+${file.added} −${file.removed}`;
      row.append(
        this.el('span', 'changes-path', file.label),
        this.el('span', 'changes-status', file.status),
        this.el('span', 'changes-counts', counts),
      );
      if (file.reverted === true) {
        row.append(this.el('span', 'changes-state', 'undone'));
      } else {
        const one = this.el('button', 'undo-file secondary', 'Undo');
        one.type = 'button';
        one.setAttribute('aria-label', `Undo ${file.label}`);
        one.title = `Restore ${file.label} as it was before this turn`;
        one.addEventListener('click', () => this.host.postMessage({ type: 'undoChanges', itemId: item.id, path: file.path }));
        row.append(one);
      }
      if (file.conflict !== undefined) row.append(this.el('div', 'changes-conflict', file.conflict));
      list.append(row);
    }
    const children: HTMLElement[] = [head, list];
    if (item.note !== undefined && item.note !== '') children.push(this.el('div', 'changes-note', item.note));
    node.replaceChildren(...children);
  }

  private fillPermission(node: HTMLElement, item: Extract<ChatItem, { kind: 'permission' }>): void {
    node.setAttribute('role', 'group');
    node.setAttribute('aria-label', `Permission request: ${item.toolName}`);
    const children: HTMLElement[] = [this.el('div', 'permission-message', item.message)];
    if (item.detail !== '') children.push(this.el('pre', 'permission-detail', item.detail));
    const pending = item.state === 'pending' && !this.answered.has(item.requestId);
    const review = item.review;
    if (pending && review !== undefined) {
      const line = this.el('div', 'permission-review', review.note);
      if (review.viewable) {
        const show = this.el('button', 'show-diff secondary', 'Show diff');
        show.type = 'button';
        show.title = `Open the diff of ${review.file}`;
        show.addEventListener('click', () => this.host.postMessage({ type: 'openProposal', requestId: item.requestId }));
        line.append(' ', show);
      }
      children.push(line);
    }
    const offer = item.allowAlways;
    if (pending && offer !== undefined) {
      // Say exactly what "Allow always" allows before it is chosen.
      const line = this.el('div', 'permission-rule', 'Allow always adds the rule ');
      line.append(this.el('code', undefined, offer.rule), ' for this session.');
      children.push(line);
    }
    if (pending) {
      const buttons = this.el('div', 'permission-buttons');
      const reason = this.el('input', 'permission-reason');
      reason.type = 'text';
      reason.setAttribute('aria-label', 'Reason for denying');
      reason.placeholder = 'Reason (optional, shown to the model when you deny)';
      const allow = this.el('button', 'allow', 'Allow');
      if (review?.editable === true) allow.title = 'Accept the right side of the diff editor, with your edits';
      const always = this.el(
        'button',
        'allow-always secondary',
        offer !== undefined && offer.label !== '' ? `Allow always: ${offer.label}` : 'Allow always',
      );
      if (offer !== undefined) always.title = `Adds the rule ${offer.rule} for this session`;
      const deny = this.el('button', 'deny secondary', 'Deny');
      for (const b of [allow, always, deny]) b.type = 'button';
      allow.addEventListener('click', () => this.answer(item.requestId, 'allow', node));
      always.addEventListener('click', () => this.answer(item.requestId, 'allowAlways', node));
      deny.addEventListener('click', () => this.answer(item.requestId, 'deny', node, reason.value));
      reason.addEventListener('keydown', (event) => {
        if (event.key === 'Enter') {
          event.preventDefault();
          this.answer(item.requestId, 'deny', node, reason.value);
        }
      });
      buttons.append(allow, always, deny);
      children.push(buttons, reason);
    } else {
      children.push(this.el('div', 'permission-outcome', permissionOutcomeText(item)));
    }
    node.replaceChildren(...children);
  }

  private answer(requestId: string, decision: PermissionAnswer, node: HTMLElement, reason?: string): void {
    if (this.answered.has(requestId)) return;
    this.answered.add(requestId);
    const message: FromWebview = { type: 'permission', requestId, decision };
    if (decision === 'deny' && reason !== undefined && reason.trim() !== '') message.reason = reason.trim();
    this.host.postMessage(message);
    // Close the card at once; the extension's update fills in how it ended.
    for (const b of node.querySelectorAll('button')) b.disabled = true;
    const item = [...this.items.values()].find((i) => i.kind === 'permission' && i.requestId === requestId);
    if (item !== undefined && item.kind === 'permission') {
      item.state = 'answered';
      item.outcome = decision === 'deny' ? 'Denied' : decision === 'allowAlways' ? 'Allowed always' : 'Allowed';
      this.fill(node, item);
    }
    this.input.focus();
  }
}

export function permissionOutcomeText(item: Extract<ChatItem, { kind: 'permission' }>): string {
  switch (item.state) {
    case 'pending':
    case 'answered':
      return item.outcome ?? 'Answered';
    case 'allowed':
      return item.outcome ?? 'Allowed';
    case 'denied':
      return item.outcome ?? 'Denied';
    case 'expired':
      return item.outcome ?? 'No longer waiting for an answer';
  }
}

export function changesHeadline(item: Extract<ChatItem, { kind: 'changes' }>): string {
  const n = item.files.length;
  return n === 1 ? '1 file changed' : `${n} files changed`;
}
