/**
 * PromptQueue: the prompts that wait for their session's running turn (issue
 * 16). Each session's prompts run in the order they were sent; one can be
 * removed before it runs. A prompt keeps what went with it when it was sent
 * (its images, the editor's context and the context chips then, not when it
 * runs), so nothing typed or attached is lost while Dave answers.
 */

import type { QueryContext } from '../protocol/editorTypes';
import type { QueryOutcome } from '../protocol/query';
import type { ImageAttachment } from '../protocol/types';
import type { QueuedPrompt } from '../shared/messages';

/** One waiting prompt. */
export interface Queued {
  readonly id: string;
  readonly text: string;
  readonly attachments: ImageAttachment[];
  /** The editor's context when it was sent. */
  readonly context: QueryContext | undefined;
  /** What the bubble shows of its context chips ("greet.py:1-2"). */
  readonly contextLabels: string[];
  /** Settles the `send` that queued it: with the turn's outcome, or undefined when removed. */
  readonly done: (outcome: QueryOutcome | undefined) => void;
}

export class PromptQueue {
  private readonly queues = new Map<string, Queued[]>();
  private counter = 0;

  /** Whether a session has prompts waiting. */
  has(sessionId: string): boolean {
    return (this.queues.get(sessionId)?.length ?? 0) > 0;
  }

  /** Queues a prompt; the promise settles when it has run (or was removed). */
  add(sessionId: string, prompt: Omit<Queued, 'id' | 'done'>): { id: string; outcome: Promise<QueryOutcome | undefined> } {
    this.counter += 1;
    const id = `q${Date.now().toString(36)}-${this.counter}`;
    const waiting = this.queues.get(sessionId) ?? [];
    this.queues.set(sessionId, waiting);
    const outcome = new Promise<QueryOutcome | undefined>((done) => waiting.push({ ...prompt, id, done }));
    return { id, outcome };
  }

  /** Removes a prompt before it runs; its session, or undefined when it is not waiting (any more). */
  remove(id: string): string | undefined {
    for (const [sessionId, waiting] of this.queues) {
      const at = waiting.findIndex((q) => q.id === id);
      if (at < 0) continue;
      const [removed] = waiting.splice(at, 1);
      if (waiting.length === 0) this.queues.delete(sessionId);
      removed?.done(undefined);
      return sessionId;
    }
    return undefined;
  }

  /** Takes the session's next prompt, to run it. */
  next(sessionId: string): Queued | undefined {
    const waiting = this.queues.get(sessionId);
    const next = waiting?.shift();
    if (waiting !== undefined && waiting.length === 0) this.queues.delete(sessionId);
    return next;
  }

  /** Drops every prompt of a session (it was deleted). */
  clear(sessionId: string): void {
    for (const queued of this.queues.get(sessionId) ?? []) queued.done(undefined);
    this.queues.delete(sessionId);
  }

  /** What the view shows of a session's queue. */
  list(sessionId: string | undefined): QueuedPrompt[] {
    const waiting = sessionId === undefined ? undefined : this.queues.get(sessionId);
    return (waiting ?? []).map((q) => ({
      id: q.id,
      text: q.text,
      images: q.attachments.length,
      ...(q.contextLabels.length > 0 ? { context: [...q.contextLabels] } : {}),
    }));
  }
}
