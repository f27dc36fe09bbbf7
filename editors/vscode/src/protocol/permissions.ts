/**
 * PermissionLedger: the one owner of a permission request's lifecycle, free of
 * `vscode`.
 *
 *     pending ──answer──▶ answering ──sent──▶ answered ─┐
 *        │                    │ (send failed)           ├──▶ resolved  (the server's permissionResolved)
 *        │                    ▼                         │
 *        └──────────────▶ expired ◀─────────────────────┘  (query ended, server stopped, answer failed)
 *
 * `resolved` and `expired` are final: nothing moves a request out of them, so a
 * late report or a second click cannot reopen or overwrite it. Every transition
 * is reported to the callback the request was opened with (the query's
 * listener), and only through here: DaveClient opens, answers, resolves and
 * expires requests by asking the ledger, and the chat turns each change into
 * its card (turnReducer.ts). One ledger per DaveClient, i.e. per server
 * process, since request ids belong to the server that made them.
 */

import type {
  AllowAlwaysOffer,
  PermissionRequestReport,
  PermissionResolvedReport,
  Proposal,
  Question,
} from './progressTypes';
import type { PermissionDecision } from './types';

export type PermissionState = 'pending' | 'answering' | 'answered' | 'resolved' | 'expired';

/** Why a request can no longer be answered, though no `permissionResolved` said how it ended. */
export type ExpiryReason =
  /** Its query was cancelled (Stop) before the server resolved it. */
  | 'cancelled'
  /** Its query ended some other way. */
  | 'queryEnded'
  /** The server process went away. */
  | 'serverStopped'
  /** The answer could not be sent; `detail` says why. */
  | 'answerFailed';

export interface PendingPermission {
  readonly requestId: string;
  readonly sessionId: string;
  readonly toolUseId: string;
  readonly toolName: string;
  readonly input: Record<string, unknown>;
  /** The server's question, e.g. "Allow Write notes.txt?". */
  readonly message: string;
  /** What "allow always" would add; undefined from servers before issue 12. */
  readonly allowAlways?: AllowAlwaysOffer;
  /** The file before and after the tool (issue 14); undefined when the server sent none. */
  readonly proposal?: Proposal;
  /** AskUserQuestion's questions (issue 16); undefined for other tools. */
  readonly questions?: Question[];
  /** ExitPlanMode's plan as markdown (issue 16); undefined for other tools. */
  readonly plan?: string;
  /** The Agent tool use of the subagent that asked (issue 16). */
  readonly parentToolUseId?: string;
  readonly state: PermissionState;
  /** What the user answered, once answered. */
  readonly answer?: PermissionDecision;
  /** The answer carried the user's edited version of the proposal (`editedContent`). */
  readonly answerEdited?: boolean;
  /** How the card words the answer when it is more than allow or deny (a question's answers, a plan's approval). */
  readonly answerNote?: string;
  /** How it ended, from `permissionResolved`. */
  readonly resolved?: { decision: 'allow' | 'deny'; by: string; rule?: string; edited?: boolean };
  /** Why it expired. */
  readonly expired?: { reason: ExpiryReason; detail?: string };
}

type Entry = { -readonly [K in keyof PendingPermission]: PendingPermission[K] };

export type PermissionChange = (permission: PendingPermission) => void;

export function isFinal(state: PermissionState): boolean {
  return state === 'resolved' || state === 'expired';
}

export class PermissionLedger {
  private readonly entries = new Map<string, { entry: Entry; notify: PermissionChange }>();

  constructor(private readonly onListenerError: (error: unknown) => void = () => undefined) {}

  get(requestId: string): PendingPermission | undefined {
    return this.entries.get(requestId)?.entry;
  }

  /** Requests still waiting for the user, optionally of one session. */
  pending(sessionId?: string): PendingPermission[] {
    return [...this.entries.values()]
      .map((e) => e.entry)
      .filter((p) => p.state === 'pending' && (sessionId === undefined || p.sessionId === sessionId));
  }

  /** A `permissionRequest` arrived: a new pending request, reported to `notify` now and on every change. */
  open(report: PermissionRequestReport, fallbackSession: string, notify: PermissionChange): PendingPermission {
    const offer = report.allowAlways;
    const entry: Entry = {
      requestId: report.requestId,
      sessionId: report.sessionId || fallbackSession,
      toolUseId: report.toolUseId,
      toolName: report.toolName,
      input: report.input ?? {},
      message: report.message ?? `Allow ${report.toolName}?`,
      // Half an offer would show a label without the rule it stands for: drop it.
      ...(typeof offer?.rule === 'string' && offer.rule !== '' && typeof offer.label === 'string'
        ? { allowAlways: { rule: offer.rule, label: offer.label } }
        : {}),
      ...proposalOf(report.proposal),
      ...questionsOf(report.questions),
      ...(typeof report.plan === 'string' ? { plan: report.plan } : {}),
      ...(typeof report.parentToolUseId === 'string' && report.parentToolUseId !== ''
        ? { parentToolUseId: report.parentToolUseId }
        : {}),
      state: 'pending',
    };
    this.entries.set(entry.requestId, { entry, notify });
    this.changed(entry.requestId);
    return entry;
  }

  /**
   * The user answers: pending → answering. False when the request is not pending
   * (answered already, resolved or expired): then nothing may be sent.
   */
  beginAnswer(requestId: string, decision: PermissionDecision, edited = false, note?: string): boolean {
    const entry = this.entries.get(requestId)?.entry;
    if (entry === undefined || entry.state !== 'pending') return false;
    entry.state = 'answering';
    entry.answer = decision;
    if (edited) entry.answerEdited = true;
    if (note !== undefined && note !== '') entry.answerNote = note;
    this.changed(requestId);
    return true;
  }

  /** The server took the answer: answering → answered. */
  answerSent(requestId: string): void {
    this.move(requestId, 'answering', (entry) => {
      entry.state = 'answered';
    });
  }

  /** The answer could not be sent: answering → expired. */
  answerFailed(requestId: string, detail: string): void {
    this.move(requestId, 'answering', (entry) => {
      entry.state = 'expired';
      entry.expired = { reason: 'answerFailed', detail };
    });
  }

  /**
   * `permissionResolved`: any open request → resolved. Returns the request, or
   * undefined when none was opened (allowed by a rule or the mode without asking).
   */
  resolve(report: PermissionResolvedReport): PendingPermission | undefined {
    const found = this.entries.get(report.requestId);
    if (found === undefined) return undefined;
    const { entry } = found;
    if (!isFinal(entry.state)) {
      entry.state = 'resolved';
      entry.resolved = { decision: report.decision, by: report.by };
      if (typeof report.rule === 'string' && report.rule !== '') entry.resolved.rule = report.rule;
      if (report.edited === true) entry.resolved.edited = true;
      this.changed(report.requestId);
    }
    // Kept until its query ends, so that a late second answer is refused here.
    return entry;
  }

  /**
   * Their query ended (or the server went away): the open ones among
   * `requestIds` (all by default) → expired, and all of them are forgotten.
   */
  expire(reason: ExpiryReason, requestIds?: Iterable<string>): void {
    for (const id of requestIds ?? [...this.entries.keys()]) {
      const entry = this.entries.get(id)?.entry;
      if (entry === undefined) continue;
      if (!isFinal(entry.state)) {
        entry.state = 'expired';
        entry.expired = { reason };
        this.changed(id);
      }
      this.entries.delete(id);
    }
  }

  private move(requestId: string, from: PermissionState, change: (entry: Entry) => void): void {
    const entry = this.entries.get(requestId)?.entry;
    if (entry === undefined || entry.state !== from) return;
    change(entry);
    this.changed(requestId);
  }

  private changed(requestId: string): void {
    const found = this.entries.get(requestId);
    if (found === undefined) return;
    try {
      found.notify(found.entry);
    } catch (error) {
      this.onListenerError(error);
    }
  }
}

/** The questions whose text is a string, their options those with a string label. */
function questionsOf(raw: unknown): { questions?: Question[] } {
  if (!Array.isArray(raw)) return {};
  const questions: Question[] = [];
  for (const q of raw as unknown[]) {
    if (typeof q !== 'object' || q === null) continue;
    const r = q as Record<string, unknown>;
    if (typeof r.question !== 'string' || r.question === '') continue;
    const options = (Array.isArray(r.options) ? (r.options as unknown[]) : [])
      .filter((o): o is { label: string; description?: unknown } => typeof (o as { label?: unknown })?.label === 'string')
      .map((o) => ({ label: o.label, ...(typeof o.description === 'string' && o.description !== '' ? { description: o.description } : {}) }));
    questions.push({
      question: r.question,
      ...(typeof r.header === 'string' && r.header !== '' ? { header: r.header } : {}),
      multiSelect: r.multiSelect === true,
      options,
    });
  }
  return questions.length > 0 ? { questions } : {};
}

/** The request's proposal as the client keeps it: a path, texts only where they are strings. */
function proposalOf(p: unknown): { proposal?: Proposal } {
  if (typeof p !== 'object' || p === null) return {};
  const q = p as Record<string, unknown>;
  if (typeof q.path !== 'string' || q.path === '') return {};
  const proposal: Proposal = {
    path: q.path,
    exists: q.exists === true,
    diff: typeof q.diff === 'string' ? q.diff : '',
  };
  if (q.truncated === true) proposal.truncated = true;
  if (q.binary === true) proposal.binary = true;
  // Whole texts only together: one side alone cannot be shown as a diff.
  if (typeof q.original === 'string' && typeof q.proposed === 'string' && !proposal.truncated && !proposal.binary) {
    proposal.original = q.original;
    proposal.proposed = q.proposed;
  }
  return { proposal };
}
