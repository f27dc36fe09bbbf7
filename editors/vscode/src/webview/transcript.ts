/**
 * The transcript: the items the extension sends, one node each, in order (a
 * subagent's tool rows nested under their Agent row), the welcome while there
 * are none, streamed text re-rendered once a frame, the scroll kept at the
 * bottom when it was there, and what must be seen (a card that asks, an
 * error) scrolled into view. Each item renders through itemRows.ts or, for a
 * card, its own module.
 */

import type { ChatItem, PermissionAnswer, Welcome } from '../shared/messages';
import { answeredOutcome, CardAnswers, type AnswerExtra, type CardContext } from './cards';
import { fillChangesCard } from './changesCard';
import type { MakeElement, Post } from './dom';
import { fillRow } from './itemRows';
import type { MarkdownRenderer } from './markdown';
import { fillPermissionCard } from './permissionCard';
import { fillPlanCard } from './planCard';
import { fillQuestionCard } from './questionCard';
import { fillRewindCard } from './rewindCard';

export class Transcript {
  private readonly items = new Map<string, ChatItem>();
  private readonly nodes = new Map<string, HTMLElement>();
  private readonly dirty = new Set<string>();
  private renderScheduled = false;
  private welcome: Welcome | undefined;
  /** Permission cards already answered here: each posts at most once. */
  private readonly answers: CardAnswers;
  private readonly cards: CardContext;

  constructor(
    private readonly box: HTMLElement,
    private readonly el: MakeElement,
    post: Post,
    markdown: MarkdownRenderer,
    /** Defers re-rendering streamed text (to the next frame). */
    private readonly schedule: (fn: () => void) => void,
    /** Gives the focus back to the message box after a card's answer. */
    private readonly focusInput: () => void,
  ) {
    this.answers = new CardAnswers(post);
    this.cards = {
      el,
      post,
      markdown,
      waiting: (item) => item.state === 'pending' && !this.answers.has(item.requestId),
      answer: (requestId, decision, node, reason, extra) => this.answer(requestId, decision, node, reason, extra),
    };
  }

  /** The extension's whole state: these items, and the welcome when there are none. */
  reset(items: readonly ChatItem[], welcome: Welcome | undefined): void {
    this.items.clear();
    this.nodes.clear();
    this.dirty.clear();
    this.answers.clear();
    this.box.replaceChildren();
    for (const item of items) this.upsert(item);
    this.welcome = welcome;
    this.renderWelcome();
  }

  scrollToBottom(): void {
    this.box.scrollTop = this.box.scrollHeight;
  }

  /** A new item; `sent` (the prompt just sent) scrolls to the bottom wherever the transcript was. */
  append(item: ChatItem, sent: boolean): void {
    this.followBottom(() => this.upsert(item), sent);
    // A new permission card, question or plan must be seen: it waits for the user.
    if ((item.kind === 'permission' && item.state === 'pending') || item.kind === 'error') this.reveal(item.id);
  }

  update(item: ChatItem): void {
    this.followBottom(() => this.upsert(item));
  }

  /** Streamed text of the open assistant message or thinking, rendered at the next frame. */
  appendText(itemId: string, text: string): void {
    const item = this.items.get(itemId);
    if (item !== undefined && (item.kind === 'assistant' || item.kind === 'thinking')) {
      item.text += text;
      this.markDirty(item.id);
    }
  }

  setBusy(busy: boolean): void {
    this.box.setAttribute('aria-busy', busy ? 'true' : 'false');
    if (!busy) {
      this.flush();
      // An error that ended the turn is seen, as an answer is.
      const last = [...this.items.values()].at(-1);
      if (last?.kind === 'error') this.reveal(last.id);
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

  /** With no items, what Dave is and how to start, instead of an empty transcript. */
  private renderWelcome(): void {
    this.box.querySelector(':scope > .welcome')?.remove();
    if (this.items.size > 0) return;
    const box = this.el('div', 'welcome');
    const backend = this.welcome?.backend === 'openai' ? 'an OpenAI-compatible model' : 'Claude Code';
    const model = this.welcome?.model ? `, model ${this.welcome.model}` : ", the backend's default model";
    box.append(
      this.el('div', 'welcome-title', 'Dave'),
      this.el('p', undefined, `Chat with ${backend}${model}, through the dave-lsp server. Dave asks before it changes anything.`),
      this.el(
        'p',
        undefined,
        'Type a question below. @ attaches a file, / lists commands, and "Ask Dave About Selection" (editor context menu) adds the selected code. Ctrl+Alt+D comes back here.',
      ),
    );
    this.box.prepend(box);
  }

  private reveal(id: string): void {
    const node = this.nodes.get(id);
    if (node !== undefined && typeof node.scrollIntoView === 'function') node.scrollIntoView({ block: 'nearest' });
  }

  private upsert(item: ChatItem): void {
    const previous = this.items.get(item.id);
    if (item.kind === 'permission' && item.state === 'pending' && this.answers.has(item.requestId) && previous?.kind === 'permission') {
      // Answered here already: keep the closed card until the request resolves.
      item = { ...item, state: 'answered', outcome: previous.outcome };
    }
    this.items.set(item.id, { ...item });
    let node = this.nodes.get(item.id);
    if (node === undefined) {
      node = this.el('div');
      node.dataset.id = item.id;
      this.nodes.set(item.id, node);
      this.parentOf(item).appendChild(node);
      if (this.items.size === 1) this.renderWelcome();
    }
    this.dirty.delete(item.id);
    this.fill(node, this.items.get(item.id)!);
  }

  /** Where an item's node goes: a subagent's tool row under its Agent row, else the transcript. */
  private parentOf(item: ChatItem): HTMLElement {
    if (item.kind !== 'tool' || item.parentToolUseId === undefined) return this.box;
    const parent = [...this.items.values()].find((i) => i.kind === 'tool' && i.toolUseId === item.parentToolUseId);
    const node = parent === undefined ? undefined : this.nodes.get(parent.id);
    if (node === undefined) return this.box;
    let children = node.querySelector<HTMLElement>(':scope > .tool-children');
    if (children === null) {
      children = this.el('div', 'tool-children');
      children.setAttribute('role', 'group');
      children.setAttribute('aria-label', 'Subagent tool uses');
      node.append(children);
    }
    return children;
  }

  private markDirty(id: string): void {
    this.dirty.add(id);
    if (!this.renderScheduled) {
      this.renderScheduled = true;
      this.schedule(() => this.flush());
    }
  }

  /** Keeps the transcript pinned to the bottom when it already was (or `always`, for what was just sent). */
  private followBottom(change: () => void, always = false): void {
    const t = this.box;
    const atBottom = t.scrollHeight - t.scrollTop - t.clientHeight < 40;
    change();
    if (atBottom || always) t.scrollTop = t.scrollHeight;
  }

  private fill(node: HTMLElement, item: ChatItem): void {
    node.className = `item ${item.kind}`;
    if (item.kind === 'permission') {
      if (item.questions !== undefined) fillQuestionCard(node, item, item.questions, this.cards);
      else if (item.plan !== undefined) fillPlanCard(node, item, item.plan, this.cards);
      else fillPermissionCard(node, item, this.cards);
    } else if (item.kind === 'changes') {
      fillChangesCard(node, item, this.cards);
    } else if (item.kind === 'rewind') {
      fillRewindCard(node, item, this.cards);
    } else {
      fillRow(node, item, this.cards);
    }
  }

  /** Answers a card once; the card closes at once, and the extension's update fills in how it ended. */
  private answer(requestId: string, decision: PermissionAnswer, node: HTMLElement, reason?: string, extra: AnswerExtra = {}): void {
    if (!this.answers.send(requestId, decision, reason, extra)) return;
    for (const b of node.querySelectorAll('button')) b.disabled = true;
    const item = [...this.items.values()].find((i) => i.kind === 'permission' && i.requestId === requestId);
    if (item !== undefined && item.kind === 'permission') {
      item.state = 'answered';
      item.outcome = answeredOutcome(item, decision);
      this.fill(node, item);
    }
    this.focusInput();
  }
}
