/**
 * RunningTurns: which sessions have a turn running, on which client, with the
 * reducer's state of each, and which are between Send and their query (the
 * server may be starting). It tells the host when the active session starts
 * or stops working, and finds the turn a permission answer belongs to. The
 * turn's events come from the client through `turnListener`, which maps the
 * client's callbacks onto the reducer's events (turnReducer.ts).
 */

import type { DaveClient } from '../protocol/daveClient';
import type { PendingPermission } from '../protocol/permissions';
import type { QueryListener, RunningQuery } from '../protocol/query';
import type { TurnEvent, TurnState } from './turnReducer';

/** A turn whose query runs: the client it went to, the query, and the reducer's state. */
export interface Turn {
  readonly client: DaveClient;
  query?: RunningQuery;
  state: TurnState;
}

export class RunningTurns {
  private readonly turns = new Map<string, Turn>();
  /** Sessions between Send and their query's start. */
  private readonly sending = new Set<string>();
  private lastBusy = false;

  constructor(private readonly onBusyChanged?: (busy: boolean) => void) {}

  /** A turn runs (its query was sent). */
  isRunning(sessionId: string): boolean {
    return this.turns.has(sessionId);
  }

  /** A turn runs or is about to: a new prompt must wait. */
  isBusy(sessionId: string): boolean {
    return this.turns.has(sessionId) || this.sending.has(sessionId);
  }

  get(sessionId: string): Turn | undefined {
    return this.turns.get(sessionId);
  }

  startSending(sessionId: string): void {
    this.sending.add(sessionId);
  }

  doneSending(sessionId: string): void {
    this.sending.delete(sessionId);
  }

  start(sessionId: string, turn: Turn): void {
    this.turns.set(sessionId, turn);
  }

  end(sessionId: string): void {
    this.turns.delete(sessionId);
  }

  /** The session and turn whose client has `requestId` pending. */
  pendingRequest(requestId: string): [string, Turn, PendingPermission] | undefined {
    for (const [sessionId, turn] of this.turns) {
      const request = turn.client.permissions.get(requestId);
      if (request?.state === 'pending') return [sessionId, turn, request];
    }
    return undefined;
  }

  /** Calls the host's onBusyChanged when the active session's busyness changed. */
  notify(activeSessionId: string | undefined): void {
    const busy = activeSessionId !== undefined && this.turns.has(activeSessionId);
    if (busy !== this.lastBusy) {
      this.lastBusy = busy;
      this.onBusyChanged?.(busy);
    }
  }
}

/**
 * The client's callbacks as the reducer's events. `onToken` is told apart so
 * that the caller can save the streamed text now and then; `onPermission`
 * lets the proposal's diff editor follow the ledger as the card does.
 */
export function turnListener(
  apply: (event: TurnEvent) => void,
  hooks: { onToken?(): void; onPermission?(permission: PendingPermission): void } = {},
): QueryListener {
  return {
    onMessage: (text) => apply({ type: 'message', text }),
    onToken: (text) => {
      apply({ type: 'token', text });
      hooks.onToken?.();
    },
    onThinking: (text) => apply({ type: 'thinking', text }),
    onToolUse: (r) =>
      apply({
        type: 'toolUse',
        toolUseId: r.toolUseId,
        toolName: r.toolName,
        message: r.message,
        parentToolUseId: r.parentToolUseId,
        ...filePathOf(r.input),
      }),
    onToolResult: (r) =>
      apply({
        type: 'toolResult',
        toolUseId: r.toolUseId,
        toolName: r.toolName,
        summary: r.summary,
        isError: r.isError,
        parentToolUseId: r.parentToolUseId,
      }),
    onPermissionChange: (permission) => {
      apply({ type: 'permission', permission });
      hooks.onPermission?.(permission);
    },
    onPermissionResolved: (_p, r) =>
      apply({ type: 'permissionResolved', requestId: r.requestId, decision: r.decision, by: r.by, rule: r.rule }),
    onStatus: (r) =>
      apply({
        type: 'status',
        state: r.state,
        hasMessage: r.message !== undefined,
        ...(r.state === 'retrying' ? { retry: retryOf(r) } : {}),
      }),
    onErrorReport: (message) => apply({ type: 'error', message }),
  };
}

/** The file a file tool works on (Read, Write, Edit, MultiEdit, NotebookEdit), for its row to open. */
function filePathOf(input: Record<string, unknown> | undefined): { filePath?: string } {
  const file = input?.file_path ?? input?.notebook_path;
  return typeof file === 'string' && file !== '' ? { filePath: file } : {};
}

/** A `retrying` status report's numbers, and why: the server's message after "(attempt 2 of 10): ". */
function retryOf(r: { attempt?: unknown; maxAttempts?: unknown; retryInMs?: unknown; message?: string }): NonNullable<
  Extract<TurnEvent, { type: 'status' }>['retry']
> {
  const message = r.message ?? '';
  const at = message.indexOf('): ');
  return {
    attempt: typeof r.attempt === 'number' ? r.attempt : 1,
    ...(typeof r.maxAttempts === 'number' ? { maxAttempts: r.maxAttempts } : {}),
    retryInMs: typeof r.retryInMs === 'number' && r.retryInMs > 0 ? r.retryInMs : 0,
    reason: at >= 0 ? message.slice(at + 3) : message || 'the model request failed',
  };
}
