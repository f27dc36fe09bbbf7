/**
 * One `dave/query` on the wire, as DaveClient runs it: the params built from
 * a request, the RunningQuery that cancels it, each `$/progress` report
 * dispatched to the query's listener (and its permission requests to the
 * ledger), and the outcome: done, cancelled, or failed with what the error's
 * `data` says.
 */

import { CancellationTokenSource, type CancellationToken } from 'vscode-jsonrpc';

import type { ChangeSummary } from './changeTypes';
import type { QueryContext } from './editorTypes';
import { errorCode, errorMessage, isCancellation, isConnectionGone } from './errors';
import type { PendingPermission, PermissionLedger } from './permissions';
import type {
  PermissionResolvedReport,
  ProgressValue,
  StatusReport,
  ToolResultReport,
  ToolUseReport,
} from './progressTypes';
import {
  ErrorCodes,
  type ImageAttachment,
  type QueryFailureData,
  type QueryParams,
  type QueryResult,
  type ToolResultSummary,
  type TranscriptMessage,
} from './types';

export type QueryOutcome =
  | { kind: 'done'; result: QueryResult }
  | {
      kind: 'cancelled';
      code: number;
      message: string;
      partialText: string;
      /** The files the turn changed before it was stopped (issue 14; error `data.changes`). */
      changes?: ChangeSummary[];
    }
  | {
      kind: 'failed';
      code: number | undefined;
      message: string;
      partialText: string;
      toolResults: ToolResultSummary[];
      changes?: ChangeSummary[];
      /** The backend's environment variable that fixes it (error `data.needsEnv`); the client words where to set it. */
      needsEnv?: string;
    };

/** The files a query's outcome says its turn changed (none from older servers). */
export function outcomeChanges(outcome: QueryOutcome): ChangeSummary[] {
  const changes = outcome.kind === 'done' ? outcome.result.changes : outcome.changes;
  return Array.isArray(changes) ? changes.filter((c) => typeof c?.path === 'string' && c.path !== '') : [];
}

/** Callbacks for one query's events; every one is optional. */
export interface QueryListener {
  onProgress?(value: ProgressValue): void;
  onToken?(text: string): void;
  onThinking?(text: string): void;
  onToolUse?(report: ToolUseReport): void;
  onToolResult?(report: ToolResultReport): void;
  /** Every change of a request of this query: opened, answering, answered, resolved, expired. */
  onPermissionChange?(permission: PendingPermission): void;
  onPermissionRequest?(permission: PendingPermission): void;
  /** The server's `permissionResolved`; for a use allowed without asking, `permission` is made up from it. */
  onPermissionResolved?(permission: PendingPermission, report: PermissionResolvedReport): void;
  onStatus?(report: StatusReport): void;
  onErrorReport?(message: string): void;
  /** The `message` line that any report may carry. */
  onMessage?(message: string): void;
}

export interface QueryRequest {
  sessionId: string;
  prompt: string;
  /** The editor's context (issue 15): the active file and the prompt's @mentions. */
  context?: QueryContext;
  /** Images (issue 16). */
  attachments?: ImageAttachment[];
  messages?: TranscriptMessage[];
  cwd?: string;
  model?: string;
}

/** The `dave/query` params of a request, reporting to `workDoneToken`; empty optional fields are left out. */
export function queryParams(request: QueryRequest, workDoneToken: string): QueryParams {
  const params: QueryParams = {
    sessionId: request.sessionId,
    prompt: request.prompt,
    messages: request.messages ?? [],
    workDoneToken,
  };
  if (request.context !== undefined && (request.context.activeFile !== undefined || (request.context.mentions?.length ?? 0) > 0)) {
    params.context = request.context;
  }
  if (request.attachments !== undefined && request.attachments.length > 0) params.attachments = request.attachments;
  if (request.cwd !== undefined) params.cwd = request.cwd;
  if (request.model !== undefined && request.model !== '') params.model = request.model;
  return params;
}

/** One `dave/query` in flight. */
export class RunningQuery {
  /** The assistant text streamed so far. */
  text = '';
  readonly outcome: Promise<QueryOutcome>;
  private readonly cts = new CancellationTokenSource();
  private finished = false;

  constructor(
    readonly sessionId: string,
    readonly workDoneToken: string,
    start: (token: CancellationToken) => Promise<QueryOutcome>,
  ) {
    this.outcome = start(this.cts.token).finally(() => {
      this.finished = true;
      this.cts.dispose();
    });
  }

  get isRunning(): boolean {
    return !this.finished;
  }

  get cancelRequested(): boolean {
    return !this.finished && this.cts.token.isCancellationRequested;
  }

  /** Sends `$/cancelRequest`; the outcome then settles as `cancelled` (or `done` if it won the race). */
  cancel(): void {
    if (!this.finished) {
      this.cts.cancel();
    }
  }
}

/**
 * Hands one `$/progress` value of `query` to its listener; a permission request
 * opens in the ledger (and joins `ownPermissions`, which expire with the
 * query). A listener that throws is logged, and the next report still comes.
 */
export function dispatchReport(
  query: RunningQuery,
  value: ProgressValue,
  listener: QueryListener,
  ledger: PermissionLedger,
  ownPermissions: Set<string>,
  log: (message: string) => void,
): void {
  const safely = (fn: () => void): void => {
    try {
      fn();
    } catch (error) {
      log(`dave: a query listener threw: ${errorMessage(error)}`);
    }
  };
  safely(() => listener.onProgress?.(value));
  if (value.kind !== 'report') return;
  if (typeof value.message === 'string' && value.message !== '') {
    const message = value.message;
    safely(() => listener.onMessage?.(message));
  }
  switch (value.type) {
    case 'token':
      query.text += value.text;
      safely(() => listener.onToken?.(value.text));
      break;
    case 'thinking':
      safely(() => listener.onThinking?.(value.text));
      break;
    case 'toolUse':
      safely(() => listener.onToolUse?.(value));
      break;
    case 'toolResult':
      safely(() => listener.onToolResult?.(value));
      break;
    case 'permissionRequest': {
      const permission = ledger.open(value, query.sessionId, (p) => listener.onPermissionChange?.(p));
      ownPermissions.add(permission.requestId);
      safely(() => listener.onPermissionRequest?.(permission));
      break;
    }
    case 'permissionResolved': {
      const permission = ledger.resolve(value) ?? allowedWithoutAsking(value, query.sessionId);
      safely(() => listener.onPermissionResolved?.(permission, value));
      break;
    }
    case 'status':
      safely(() => listener.onStatus?.(value));
      break;
    case 'error':
      safely(() => listener.onErrorReport?.(value.message));
      break;
    default:
      log(`dave: unknown progress report ${JSON.stringify(value)}`);
  }
}

/** The outcome of a query whose request failed: cancelled, or failed with the error's `data`. */
export function failureOutcome(error: unknown, query: RunningQuery, cancelRequested: boolean): QueryOutcome {
  const code = errorCode(error);
  const message = errorMessage(error);
  const data = (error as { data?: QueryFailureData } | undefined)?.data;
  const changes = Array.isArray(data?.changes) ? { changes: data.changes } : {};
  if (code === ErrorCodes.RequestCancelled || (cancelRequested && isCancellation(error))) {
    return {
      kind: 'cancelled',
      code: ErrorCodes.RequestCancelled,
      message,
      partialText: query.text,
      ...changes,
    };
  }
  const partialText = typeof data?.partialText === 'string' ? data.partialText : query.text;
  const toolResults = Array.isArray(data?.toolResults) ? data.toolResults : [];
  return {
    kind: 'failed',
    code,
    message: isConnectionGone(error)
      ? `The Dave server stopped before it answered (${message}). Restart it with "Dave: Restart Server" and see the Dave output for its log.`
      : message,
    partialText,
    toolResults,
    ...changes,
    ...(typeof data?.needsEnv === 'string' && data.needsEnv !== '' ? { needsEnv: data.needsEnv } : {}),
  };
}

/** The stand-in for a tool use that a rule or the mode allowed without asking: no request came first. */
function allowedWithoutAsking(report: PermissionResolvedReport, sessionId: string): PendingPermission {
  return {
    requestId: report.requestId,
    sessionId,
    toolUseId: '',
    toolName: '',
    input: {},
    message: '',
    state: 'resolved',
    resolved: {
      decision: report.decision,
      by: report.by,
      ...(typeof report.rule === 'string' && report.rule !== '' ? { rule: report.rule } : {}),
    },
  };
}
