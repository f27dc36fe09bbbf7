/**
 * The per-turn reducer: what one turn looks like in the chat, from the server's
 * reports. Pure (no `vscode`, no I/O, no clock): `reduceTurn(state, event)`
 * returns the next state and the effects the controller applies (items to
 * append or update, text to stream, the status line, the reply for the
 * transcript), so a turn can be replayed and unit-tested event by event.
 *
 * Descriptions come from the server: a tool row shows `toolUse.message`
 * (`Write notes.txt`, less the tool name the row already shows), a permission
 * card its `permissionRequest.message`. A card's state is a projection of its
 * request's state in the PermissionLedger (permissions.ts), never decided here.
 */

import type { PermissionExtra } from '../protocol/daveClient';
import type { ExpiryReason, PendingPermission } from '../protocol/permissions';
import type { Question } from '../protocol/progressTypes';
import { outcomeChanges, type QueryOutcome } from '../protocol/query';
import { retryText, type ChatItem, type PermissionAnswer, type PermissionCardState, type RetryInfo } from '../shared/messages';
import { changedFileRow, proposalCardInfo } from './review';

type Item<K extends ChatItem['kind']> = Extract<ChatItem, { kind: K }>;
export type PermissionCard = Item<'permission'>;

/** One turn's events, in the order the client reports them. */
export type TurnEvent =
  /** The `message` line a report carried (it comes before the report's own event). */
  | { type: 'message'; text: string }
  | { type: 'token'; text: string }
  | { type: 'thinking'; text: string }
  | { type: 'toolUse'; toolUseId: string; toolName: string; message?: string; parentToolUseId?: string; filePath?: string }
  | { type: 'toolResult'; toolUseId: string; toolName: string; summary: string; isError: boolean; parentToolUseId?: string }
  /** A request of this turn changed state in the ledger (opened, answered, resolved, expired). */
  | { type: 'permission'; permission: PendingPermission }
  | { type: 'permissionResolved'; requestId: string; decision: 'allow' | 'deny'; by: string; rule?: string }
  | { type: 'status'; state: string; hasMessage: boolean; retry?: RetryInfo }
  | { type: 'error'; message: string }
  | { type: 'end'; outcome: QueryOutcome; streamedText: string };

export type TurnEffect =
  | { type: 'append'; item: ChatItem }
  | { type: 'update'; item: ChatItem }
  | { type: 'appendText'; itemId: string; text: string }
  | { type: 'status'; text: string; retry?: RetryInfo }
  /** The assistant's entry for the transcript (`messages`), once the turn ended. */
  | { type: 'reply'; text: string }
  /** The turn changed files: `itemId` is its "N files changed" row, which wants its turn number. */
  | { type: 'changes'; itemId: string }
  | { type: 'log'; message: string };

export interface TurnState {
  readonly turnId: string;
  /** The folder paths are shown relative to (the workspace), if any. */
  readonly cwd?: string;
  /** Items made so far, for unique ids. */
  readonly made: number;
  /** This turn's items, oldest first, as last sent to the view. */
  readonly items: readonly ChatItem[];
  /** The assistant message still streaming, if any. */
  readonly openText?: string;
  /** The thinking block still growing, if any. */
  readonly openThinking?: string;
  /** The server's description of each tool use of this turn, by toolUseId (less the tool name). */
  readonly targets: Readonly<Record<string, string>>;
  /** The last `error` report and its item, so that the failure does not say it twice. */
  readonly lastError?: string;
  readonly lastErrorItem?: string;
  readonly ended: boolean;
}

export const STATUS_TEXT: Readonly<Record<string, string>> = {
  connecting: 'Starting Claude Code…',
  working: 'Working…',
  compacting: 'Compacting the conversation…',
};

/** A new turn; `turnId` prefixes its items' ids, so it must be unique. */
export function startTurn(turnId: string, cwd?: string): TurnState {
  return { turnId, made: 0, items: [], targets: {}, ended: false, ...(cwd !== undefined ? { cwd } : {}) };
}

/** The next state of the turn after `event`, and what to do about it. */
export function reduceTurn(state: TurnState, event: TurnEvent): [TurnState, TurnEffect[]] {
  const t = new Turn(state);
  t.apply(event);
  return [t.state, t.effects];
}

/** Replays `events` from a new turn (tests, and a reader's way to see the rules at once). */
export function replayTurn(turnId: string, events: readonly TurnEvent[], cwd?: string): [TurnState, TurnEffect[]] {
  let state = startTurn(turnId, cwd);
  const effects: TurnEffect[] = [];
  for (const event of events) {
    const [next, more] = reduceTurn(state, event);
    state = next;
    effects.push(...more);
  }
  return [state, effects];
}

/** One reduction step: copies the state, collects the effects. */
class Turn {
  readonly effects: TurnEffect[] = [];
  private s: { -readonly [K in keyof TurnState]: TurnState[K] };
  private items: ChatItem[];

  constructor(state: TurnState) {
    this.s = { ...state };
    this.items = [...state.items];
  }

  get state(): TurnState {
    return { ...this.s, items: this.items };
  }

  apply(event: TurnEvent): void {
    if (this.s.ended) return;
    switch (event.type) {
      case 'message':
        this.status(event.text);
        break;
      case 'token':
        this.s.openThinking = undefined;
        if (this.s.openText === undefined) {
          this.s.openText = this.append({ id: this.id(), kind: 'assistant', text: event.text, streaming: true }).id;
        } else {
          this.appendText(this.s.openText, event.text);
        }
        break;
      case 'thinking':
        if (this.s.openThinking === undefined) {
          this.closeText();
          this.s.openThinking = this.append({ id: this.id(), kind: 'thinking', text: event.text }).id;
        } else {
          this.appendText(this.s.openThinking, event.text);
        }
        break;
      case 'toolUse': {
        this.closeText();
        const target = toolTarget(event.toolName, event.message);
        this.s.targets = { ...this.s.targets, [event.toolUseId]: target };
        this.append({
          id: this.id(),
          kind: 'tool',
          toolUseId: event.toolUseId,
          toolName: event.toolName,
          summary: target,
          isError: false,
          done: false,
          ...parentOf(event.parentToolUseId),
          ...(event.filePath !== undefined ? { filePath: event.filePath } : {}),
        });
        break;
      }
      case 'toolResult': {
        this.closeText();
        const row = this.find((i): i is Item<'tool'> => i.kind === 'tool' && i.toolUseId === event.toolUseId);
        if (row !== undefined) {
          this.update({ ...row, summary: event.summary || row.summary, isError: event.isError, done: true });
        } else {
          this.append({
            id: this.id(),
            kind: 'tool',
            toolUseId: event.toolUseId,
            toolName: event.toolName,
            summary: event.summary,
            isError: event.isError,
            done: true,
            ...parentOf(event.parentToolUseId),
          });
        }
        break;
      }
      case 'permission':
        this.permission(event.permission);
        break;
      case 'permissionResolved':
        // Allowed without asking (no card). Name the rule, so that a rule added long
        // ago is never silent; the mode (or an older server, with no rule) needs no line.
        if (
          this.card(event.requestId) === undefined &&
          event.by === 'rule' &&
          event.decision === 'allow' &&
          typeof event.rule === 'string' &&
          event.rule !== ''
        ) {
          this.closeText();
          this.append({ id: this.id(), kind: 'notice', text: `Allowed by rule ${event.rule}` });
        }
        break;
      case 'status':
        if (event.retry !== undefined) this.status(retryText(event.retry, event.retry.retryInMs), event.retry);
        else if (!event.hasMessage) this.status(STATUS_TEXT[event.state] ?? event.state);
        break;
      case 'error':
        this.s.lastError = event.message;
        this.closeText();
        this.s.lastErrorItem = this.append({ id: this.id(), kind: 'error', message: event.message }).id;
        break;
      case 'end':
        this.end(event.outcome, event.streamedText);
        break;
    }
  }

  private permission(p: PendingPermission): void {
    const existing = this.card(p.requestId);
    if (existing === undefined) {
      this.closeText();
      this.append(permissionCard(this.id(), p, this.s.targets[p.toolUseId] ?? '', undefined, this.s.cwd));
      this.status(`Waiting for your answer: ${p.message}`);
      return;
    }
    this.update(permissionCard(existing.id, p, this.s.targets[p.toolUseId] ?? '', existing.detail, this.s.cwd));
    if (p.state === 'resolved') this.status('Working…');
  }

  private end(outcome: QueryOutcome, streamedText: string): void {
    this.closeText();
    switch (outcome.kind) {
      case 'done': {
        const text = outcome.result.text;
        if (streamedText === '' && text !== '') {
          // Nothing streamed: show the result itself.
          this.append({ id: this.id(), kind: 'assistant', text, streaming: false });
        } else if (streamedText !== text) {
          this.effects.push({ type: 'log', message: 'streamed text differs from the result text' });
        }
        this.effects.push({ type: 'reply', text });
        break;
      }
      case 'cancelled':
        if (outcome.partialText !== '') this.effects.push({ type: 'reply', text: outcome.partialText });
        this.append({ id: this.id(), kind: 'notice', text: 'Stopped.' });
        break;
      case 'failed': {
        if (outcome.partialText !== '') this.effects.push({ type: 'reply', text: outcome.partialText });
        const message = outcome.needsEnv !== undefined ? envFixText(outcome.message, outcome.needsEnv) : outcome.message;
        const reported = this.s.lastErrorItem === undefined ? undefined : this.items.find((i) => i.id === this.s.lastErrorItem);
        if (outcome.message !== this.s.lastError || reported?.kind !== 'error') {
          this.append({ id: this.id(), kind: 'error', message });
        } else if (message !== reported.message) {
          // The `error` report said it already: word its fix in this client's settings.
          this.update({ ...reported, message });
        }
        break;
      }
    }
    const changes = outcomeChanges(outcome);
    if (changes.length > 0) {
      const row = this.append({ id: this.id(), kind: 'changes', files: changes.map((c) => changedFileRow(c, this.s.cwd)) });
      this.effects.push({ type: 'changes', itemId: row.id });
    }
    this.status('');
    this.s.ended = true;
  }

  // ---- helpers ---------------------------------------------------------

  private id(): string {
    this.s.made += 1;
    return `${this.s.turnId}-${this.s.made}`;
  }

  private find<T extends ChatItem>(predicate: (item: ChatItem) => item is T): T | undefined {
    return this.items.find(predicate);
  }

  private card(requestId: string): PermissionCard | undefined {
    return this.find((i): i is PermissionCard => i.kind === 'permission' && i.requestId === requestId);
  }

  private append<T extends ChatItem>(item: T): T {
    this.items.push(item);
    this.effects.push({ type: 'append', item: { ...item } });
    return item;
  }

  private update(item: ChatItem): void {
    const at = this.items.findIndex((i) => i.id === item.id);
    if (at >= 0) this.items[at] = item;
    this.effects.push({ type: 'update', item: { ...item } });
  }

  private appendText(itemId: string, text: string): void {
    const at = this.items.findIndex((i) => i.id === itemId);
    const item = this.items[at];
    if (item === undefined || (item.kind !== 'assistant' && item.kind !== 'thinking')) return;
    this.items[at] = { ...item, text: item.text + text };
    this.effects.push({ type: 'appendText', itemId, text });
  }

  /** Ends the streaming assistant message and any thinking block. */
  private closeText(): void {
    const open = this.s.openText === undefined ? undefined : this.items.find((i) => i.id === this.s.openText);
    if (open?.kind === 'assistant') this.update({ ...open, streaming: false });
    this.s.openText = undefined;
    this.s.openThinking = undefined;
  }

  private status(text: string, retry?: RetryInfo): void {
    this.effects.push(retry === undefined ? { type: 'status', text } : { type: 'status', text, retry });
  }
}

/**
 * A failure whose fix is an environment variable of the backend (`needsEnv`),
 * worded for VS Code: where to set it, instead of the server's generic hint.
 */
export function envFixText(message: string, variable: string): string {
  const bare = message.replace(/\s*\(set [^()]* in the backend's environment\)\s*$/, '');
  return `${bare} (set ${variable} in the "dave.server.env" setting; Dave then offers to restart the server)`;
}

function parentOf(parentToolUseId: string | undefined): { parentToolUseId?: string } {
  return typeof parentToolUseId === 'string' && parentToolUseId !== '' ? { parentToolUseId } : {};
}

/** The server's description of a tool use less the tool's name, which the row shows on its own. */
export function toolTarget(toolName: string, message: string | undefined): string {
  if (message === undefined || message === '' || message === toolName) return '';
  return message.startsWith(`${toolName} `) ? message.slice(toolName.length + 1) : message;
}

function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/**
 * What a card shows under the server's question: the server's target line, then
 * what the tool would write (content, or an edit's old and new text); the input
 * itself for a tool the target does not describe.
 */
export function permissionDetail(target: string, input: Record<string, unknown>): string {
  const withTarget = (body: string): string => clip(target === '' ? body : `${target}\n${body}`, 800);
  if (typeof input.content === 'string') return withTarget(input.content);
  if (typeof input.old_string === 'string' && typeof input.new_string === 'string') {
    return withTarget(`- ${input.old_string}\n+ ${input.new_string}`);
  }
  if (target !== '' && (typeof input.command === 'string' || typeof input.file_path === 'string')) return target;
  return clip(JSON.stringify(input, null, 2), 800);
}

/** The card of a request in its current state. `detail` is kept once made. */
export function permissionCard(
  id: string,
  p: PendingPermission,
  target: string,
  detail?: string,
  cwd?: string,
): PermissionCard {
  return {
    id,
    kind: 'permission',
    requestId: p.requestId,
    toolName: p.toolName,
    message: p.message,
    detail: detail ?? permissionDetail(target, p.input),
    ...(p.allowAlways !== undefined ? { allowAlways: { ...p.allowAlways } } : {}),
    ...(p.proposal !== undefined ? { review: proposalCardInfo(p.proposal, cwd) } : {}),
    ...(p.questions !== undefined ? { questions: p.questions.map((q) => ({ ...q, options: (q.options ?? []).map((o) => ({ ...o })) })) } : {}),
    ...(p.plan !== undefined ? { plan: p.plan } : {}),
    ...cardState(p),
  };
}

function cardState(p: PendingPermission): { state: PermissionCardState; outcome?: string } {
  switch (p.state) {
    case 'pending':
      return { state: 'pending' };
    case 'answering':
    case 'answered':
      return { state: 'answered', outcome: p.answerNote ?? answerText(p.answer, p.answerEdited) };
    case 'resolved': {
      const { decision, by, rule, edited } = p.resolved ?? { decision: 'deny', by: 'cancel' };
      const answered = p.answer === undefined ? undefined : (p.answerNote ?? answerText(p.answer, edited === true || p.answerEdited));
      return {
        state: decision === 'allow' ? 'allowed' : 'denied',
        outcome: resolvedText(decision, by, answered, rule, edited === true),
      };
    }
    case 'expired':
      return { state: 'expired', outcome: expiryText(p.expired?.reason ?? 'queryEnded', p.expired?.detail) };
  }
}

function answerText(answer: PendingPermission['answer'], edited?: boolean): string {
  if (answer === 'deny') return 'Denied';
  const allowed = answer === 'allowAlways' ? 'Allowed always' : 'Allowed';
  return edited === true ? `${allowed} with your edits` : allowed;
}

export function expiryText(reason: ExpiryReason, detail?: string): string {
  switch (reason) {
    case 'answerFailed':
      return `Could not answer: ${detail ?? 'the server did not take the answer'}`;
    case 'serverStopped':
      return 'The server stopped before this was resolved';
    case 'cancelled':
      return 'Cancelled';
    case 'queryEnded':
      return 'No longer waiting for an answer';
  }
}

/**
 * A card read back from storage whose request was still open: that request
 * belonged to a window (and a ledger) that is gone, so it can only be expired.
 */
export function cardAfterReload(card: PermissionCard): PermissionCard {
  return card.state === 'pending' || card.state === 'answered'
    ? { ...card, state: 'expired', outcome: expiryText('queryEnded') }
    : card;
}

function resolvedText(
  decision: 'allow' | 'deny',
  by: string,
  answered: string | undefined,
  rule?: string,
  edited = false,
): string {
  const named = rule !== undefined && rule !== '';
  if (by === 'user' && decision === 'allow' && named) {
    return `Allowed always${edited ? ' with your edits' : ''}: added the rule ${rule}`;
  }
  if (by === 'user' && decision === 'allow' && edited) return 'Allowed with your edits';
  if (by === 'user') return answered ?? (decision === 'allow' ? 'Allowed' : 'Denied');
  if (by === 'rule' && named) return decision === 'allow' ? `Allowed by rule ${rule}` : `Denied by rule ${rule}`;
  if (by === 'rule') return decision === 'allow' ? 'Allowed by a rule' : 'Denied by a rule';
  if (by === 'mode') return decision === 'allow' ? 'Allowed by the permission mode' : 'Denied by the permission mode';
  if (by === 'cancel') return 'Cancelled';
  return decision === 'allow' ? 'Allowed' : 'Denied';
}

/** How a question or plan card words its answer. */
export function answerNote(
  questions: readonly Question[] | undefined,
  plan: string | undefined,
  decision: PermissionAnswer,
  reason: string | undefined,
  extra: Pick<PermissionExtra, 'answers' | 'permissionMode'>,
): string | undefined {
  if (questions !== undefined) {
    if (decision === 'deny') return reason ? `Declined to answer: ${reason}` : 'Declined to answer';
    const said = questions
      .filter((q) => extra.answers?.[q.question] !== undefined)
      .map((q) => {
        const a = extra.answers![q.question];
        return `${q.header ?? q.question}: ${Array.isArray(a) ? a.join(', ') : a}`;
      });
    return said.length > 0 ? `Answered (${said.join('; ')})` : 'Answered';
  }
  if (plan !== undefined) {
    if (decision === 'deny') return reason ? `Kept planning: ${reason}` : 'Kept planning';
    return extra.permissionMode === 'acceptEdits' ? 'Approved; accepting edits' : 'Approved';
  }
  return undefined;
}
