/**
 * What the transcript's cards (permissionCard.ts, questionCard.ts, planCard.ts,
 * changesCard.ts) share: the context a card renders with, the rule that a
 * permission request is answered once from this view, and the line that says
 * how a request ended.
 */

import type { ChatItem, FromWebview, PermissionAnswer, PermissionMode } from '../shared/messages';
import type { MakeElement, Post } from './dom';
import type { MarkdownRenderer } from './markdown';

export type PermissionItem = Extract<ChatItem, { kind: 'permission' }>;

/** What an answer carries besides the decision: a question card's answers, an approved plan's mode. */
export interface AnswerExtra {
  answers?: Record<string, string | string[]>;
  permissionMode?: PermissionMode;
}

export interface CardContext {
  readonly el: MakeElement;
  readonly post: Post;
  readonly markdown: MarkdownRenderer;
  /** The card waits for the user: its request is pending and was not answered here yet. */
  waiting(item: PermissionItem): boolean;
  /** Answers the card's request (once) and closes the card at once. */
  answer(requestId: string, decision: PermissionAnswer, node: HTMLElement, reason?: string, extra?: AnswerExtra): void;
}

/** The permission requests answered from this view: each posts its answer at most once. */
export class CardAnswers {
  private readonly answered = new Set<string>();

  constructor(private readonly post: Post) {}

  has(requestId: string): boolean {
    return this.answered.has(requestId);
  }

  /** A new state from the extension: its cards say what was answered. */
  clear(): void {
    this.answered.clear();
  }

  /** Posts the answer; false, posting nothing, when the request was answered here already. */
  send(requestId: string, decision: PermissionAnswer, reason?: string, extra: AnswerExtra = {}): boolean {
    if (this.answered.has(requestId)) return false;
    this.answered.add(requestId);
    const message: FromWebview = { type: 'permission', requestId, decision, ...extra };
    if (decision === 'deny' && reason !== undefined && reason.trim() !== '') message.reason = reason.trim();
    this.post(message);
    return true;
  }
}

/** A card's outcome as soon as it is answered here, before the extension's update says how it ended. */
export function answeredOutcome(item: PermissionItem, decision: PermissionAnswer): string {
  if (item.questions !== undefined) return decision === 'deny' ? 'Declined to answer' : 'Answered';
  if (item.plan !== undefined) return decision === 'deny' ? 'Kept planning' : 'Approved';
  return decision === 'deny' ? 'Denied' : decision === 'allowAlways' ? 'Allowed always' : 'Allowed';
}

export function permissionOutcomeText(item: PermissionItem): string {
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
