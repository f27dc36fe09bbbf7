/**
 * DaveClient: the client half of the dave-lsp protocol, free of `vscode`.
 *
 * It owns what a query is on the wire: the `workDoneToken` and its `$/progress`
 * stream, the permission requests that arrive on it and their answers, and
 * cancellation (`$/cancelRequest` through a CancellationToken). It speaks to
 * any JSON-RPC endpoint with `sendRequest` and `onProgress`, so the extension
 * hands it the vscode-languageclient and the tests hand it a raw
 * vscode-jsonrpc connection to the real server.
 */

import {
  CancellationTokenSource,
  ProgressType,
  type CancellationToken,
  type Disposable,
} from 'vscode-jsonrpc';

import {
  ErrorCodes,
  Methods,
  type AllowAlwaysOffer,
  type DaveCapabilities,
  type DeleteSessionResult,
  type ListRulesResult,
  type ListSessionsResult,
  type PermissionDecision,
  type PermissionParams,
  type PermissionRequestReport,
  type PermissionResolvedReport,
  type PermissionRule,
  type ProgressValue,
  type QueryFailureData,
  type QueryParams,
  type QueryResult,
  type RemoveRuleResult,
  type StatusReport,
  type ToolResultReport,
  type ToolResultSummary,
  type ToolUseReport,
  type TranscriptMessage,
} from './types';

export const daveProgressType = new ProgressType<ProgressValue>();

/** The part of a JSON-RPC connection that DaveClient needs. */
export interface DaveRpc {
  sendRequest<R>(method: string, params: unknown, token?: CancellationToken): Promise<R>;
  onProgress(token: string | number, handler: (value: ProgressValue) => void): Disposable;
}

/** Anything shaped like a vscode-jsonrpc MessageConnection or a LanguageClient. */
export interface RpcLike {
  sendRequest(method: string, ...params: any[]): Promise<unknown>;
  onProgress<P>(type: ProgressType<P>, token: string | number, handler: (value: P) => void): Disposable;
}

export function rpcFrom(connection: RpcLike): DaveRpc {
  return {
    // Pass the token only when there is one: vscode-jsonrpc would send an
    // `undefined` trailing argument as a second positional param.
    sendRequest: <R>(method: string, params: unknown, token?: CancellationToken) =>
      (token === undefined
        ? connection.sendRequest(method, params)
        : connection.sendRequest(method, params, token)) as Promise<R>,
    onProgress: (token, handler) => connection.onProgress(daveProgressType, token, handler),
  };
}

export type QueryOutcome =
  | { kind: 'done'; result: QueryResult }
  | { kind: 'cancelled'; code: number; message: string; partialText: string }
  | {
      kind: 'failed';
      code: number | undefined;
      message: string;
      partialText: string;
      toolResults: ToolResultSummary[];
    };

export type PermissionState = 'pending' | 'answering' | 'answered' | 'resolved';

export interface PendingPermission {
  readonly requestId: string;
  readonly sessionId: string;
  readonly toolUseId: string;
  readonly toolName: string;
  readonly input: Record<string, unknown>;
  readonly message: string;
  /** What "allow always" would add; undefined from servers before issue 12. */
  readonly allowAlways?: AllowAlwaysOffer;
  state: PermissionState;
  /** What the user answered, once answered. */
  answer?: PermissionDecision;
  /** How it ended, from `permissionResolved`. */
  resolved?: { decision: 'allow' | 'deny'; by: string; rule?: string };
}

/** Callbacks for one query's events; every one is optional. */
export interface QueryListener {
  onProgress?(value: ProgressValue): void;
  onToken?(text: string): void;
  onThinking?(text: string): void;
  onToolUse?(report: ToolUseReport): void;
  onToolResult?(report: ToolResultReport): void;
  onPermissionRequest?(permission: PendingPermission): void;
  onPermissionResolved?(permission: PendingPermission, report: PermissionResolvedReport): void;
  onStatus?(report: StatusReport): void;
  onErrorReport?(message: string): void;
  /** The `message` line that any report may carry. */
  onMessage?(message: string): void;
}

export interface QueryRequest {
  sessionId: string;
  prompt: string;
  messages?: TranscriptMessage[];
  cwd?: string;
  model?: string;
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

export interface DaveClientOptions {
  /** Makes unique progress tokens; tests may make them predictable. */
  newToken?: () => string;
  /** Where listener exceptions and protocol oddities go. */
  log?: (message: string) => void;
}

let tokenCounter = 0;
function defaultToken(): string {
  tokenCounter += 1;
  return `dave-${process.pid}-${Date.now().toString(36)}-${tokenCounter}`;
}

export class DaveClient {
  private readonly running = new Set<RunningQuery>();
  private readonly permissions = new Map<string, PendingPermission>();
  private capabilities: DaveCapabilities | undefined;
  private readonly newToken: () => string;
  private readonly log: (message: string) => void;

  constructor(
    private readonly rpc: DaveRpc,
    options: DaveClientOptions = {},
  ) {
    this.newToken = options.newToken ?? defaultToken;
    this.log = options.log ?? (() => undefined);
  }

  /** Records `capabilities.experimental.dave` from the initialize result. */
  setCapabilities(capabilities: DaveCapabilities | undefined): void {
    this.capabilities = capabilities;
  }

  supports(method: string): boolean {
    return this.capabilities?.methods?.includes(method) ?? false;
  }

  /** Queries still running, optionally of one session. */
  runningQueries(sessionId?: string): RunningQuery[] {
    return [...this.running].filter((q) => sessionId === undefined || q.sessionId === sessionId);
  }

  /** Permission requests not yet answered, optionally of one session. */
  pendingPermissions(sessionId?: string): PendingPermission[] {
    return [...this.permissions.values()].filter(
      (p) => p.state === 'pending' && (sessionId === undefined || p.sessionId === sessionId),
    );
  }

  query(request: QueryRequest, listener: QueryListener = {}): RunningQuery {
    const token = this.newToken();
    const params: QueryParams = {
      sessionId: request.sessionId,
      prompt: request.prompt,
      messages: request.messages ?? [],
      workDoneToken: token,
    };
    if (request.cwd !== undefined) params.cwd = request.cwd;
    if (request.model !== undefined && request.model !== '') params.model = request.model;

    const query: RunningQuery = new RunningQuery(request.sessionId, token, async (cancel) => {
      const ownPermissions = new Set<string>();
      // Register before sending: the first report may arrive before the response.
      const subscription = this.rpc.onProgress(token, (value) => {
        this.dispatch(query, value, listener, ownPermissions);
      });
      try {
        const result = await this.rpc.sendRequest<QueryResult>(Methods.query, params, cancel);
        return { kind: 'done', result } as const;
      } catch (error) {
        return this.failureOutcome(error, query, cancel.isCancellationRequested);
      } finally {
        subscription.dispose();
        // A request whose query ended can no longer be answered.
        for (const id of ownPermissions) {
          const permission = this.permissions.get(id);
          if (permission !== undefined && permission.state !== 'resolved') {
            permission.state = 'resolved';
            permission.resolved ??= { decision: 'deny', by: 'cancel' };
            this.safely(() =>
              listener.onPermissionResolved?.(permission, {
                kind: 'report',
                type: 'permissionResolved',
                requestId: id,
                decision: 'deny',
                by: 'cancel',
              }),
            );
          }
          this.permissions.delete(id);
        }
        this.running.delete(query);
      }
    });
    this.running.add(query);
    return query;
  }

  /**
   * Answers a permission request once. Returns false, sending nothing, when this
   * client already answered it or saw it resolved; rejects with the server's
   * error otherwise.
   */
  async answerPermission(
    requestId: string,
    decision: PermissionDecision,
    reason?: string,
    updatedInput?: Record<string, unknown>,
  ): Promise<boolean> {
    const permission = this.permissions.get(requestId);
    if (permission !== undefined) {
      if (permission.state !== 'pending') return false;
      permission.state = 'answering';
      permission.answer = decision;
    }
    const params: PermissionParams = { requestId, decision };
    if (reason !== undefined && reason !== '') params.reason = reason;
    if (updatedInput !== undefined) params.updatedInput = updatedInput;
    try {
      await this.rpc.sendRequest<{ ok: boolean }>(Methods.permission, params);
      if (permission !== undefined && permission.state === 'answering') permission.state = 'answered';
      return true;
    } catch (error) {
      if (permission !== undefined && permission.state === 'answering') {
        // The server knows best: an unknown or answered id will never be answerable again.
        permission.state = errorCode(error) === ErrorCodes.InvalidParams ? 'resolved' : 'pending';
      }
      throw error;
    }
  }

  /** Cancels every running query of a session; returns how many were cancelled. */
  cancelSession(sessionId: string): number {
    const queries = this.runningQueries(sessionId);
    for (const q of queries) q.cancel();
    return queries.length;
  }

  async deleteSession(sessionId: string): Promise<boolean> {
    const result = await this.rpc.sendRequest<DeleteSessionResult>(Methods.deleteSession, { sessionId });
    return result.deleted;
  }

  /** `dave/listSessions`, or undefined when the server does not advertise it. */
  async listSessions(): Promise<ListSessionsResult | undefined> {
    if (!this.supports(Methods.listSessions)) return undefined;
    const result = await this.rpc.sendRequest<ListSessionsResult>(Methods.listSessions, {});
    return { sessions: Array.isArray(result?.sessions) ? result.sessions : [] };
  }

  /**
   * `dave/listRules`: the session's "allow always" rules, or undefined when the
   * server does not advertise it. Rejects with -32602 for a session the server
   * does not know.
   */
  async listRules(sessionId: string): Promise<PermissionRule[] | undefined> {
    if (!this.supports(Methods.listRules)) return undefined;
    const result = await this.rpc.sendRequest<ListRulesResult>(Methods.listRules, { sessionId });
    return Array.isArray(result?.rules) ? result.rules.filter((r) => typeof r?.rule === 'string') : [];
  }

  /** `dave/removeRule`: true when the rule was there and is gone. */
  async removeRule(sessionId: string, rule: string): Promise<boolean> {
    const result = await this.rpc.sendRequest<RemoveRuleResult>(Methods.removeRule, { sessionId, rule });
    return result?.removed === true;
  }

  /** Cancels everything; used when the connection goes away. */
  dispose(): void {
    for (const q of this.running) q.cancel();
  }

  private dispatch(
    query: RunningQuery,
    value: ProgressValue,
    listener: QueryListener,
    ownPermissions: Set<string>,
  ): void {
    this.safely(() => listener.onProgress?.(value));
    if (value.kind !== 'report') return;
    if (typeof value.message === 'string' && value.message !== '') {
      const message = value.message;
      this.safely(() => listener.onMessage?.(message));
    }
    switch (value.type) {
      case 'token':
        query.text += value.text;
        this.safely(() => listener.onToken?.(value.text));
        break;
      case 'thinking':
        this.safely(() => listener.onThinking?.(value.text));
        break;
      case 'toolUse':
        this.safely(() => listener.onToolUse?.(value));
        break;
      case 'toolResult':
        this.safely(() => listener.onToolResult?.(value));
        break;
      case 'permissionRequest': {
        const permission = toPending(value, query.sessionId);
        this.permissions.set(permission.requestId, permission);
        ownPermissions.add(permission.requestId);
        this.safely(() => listener.onPermissionRequest?.(permission));
        break;
      }
      case 'permissionResolved': {
        const permission =
          this.permissions.get(value.requestId) ??
          // Allowed by a rule or the mode without asking: no request came first.
          toPending(
            {
              kind: 'report',
              type: 'permissionRequest',
              requestId: value.requestId,
              sessionId: query.sessionId,
              toolUseId: '',
              toolName: '',
              input: {},
            },
            query.sessionId,
          );
        permission.state = 'resolved';
        permission.resolved = { decision: value.decision, by: value.by };
        if (typeof value.rule === 'string' && value.rule !== '') permission.resolved.rule = value.rule;
        this.permissions.delete(value.requestId);
        ownPermissions.delete(value.requestId);
        this.safely(() => listener.onPermissionResolved?.(permission, value));
        break;
      }
      case 'status':
        this.safely(() => listener.onStatus?.(value));
        break;
      case 'error':
        this.safely(() => listener.onErrorReport?.(value.message));
        break;
      default:
        this.log(`dave: unknown progress report ${JSON.stringify(value)}`);
    }
  }

  private failureOutcome(error: unknown, query: RunningQuery, cancelRequested: boolean): QueryOutcome {
    const code = errorCode(error);
    const message = errorMessage(error);
    if (code === ErrorCodes.RequestCancelled || (cancelRequested && isCancellation(error))) {
      return {
        kind: 'cancelled',
        code: ErrorCodes.RequestCancelled,
        message,
        partialText: query.text,
      };
    }
    const data = (error as { data?: QueryFailureData } | undefined)?.data;
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
    };
  }

  private safely(fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.log(`dave: a query listener threw: ${errorMessage(error)}`);
    }
  }
}

function toPending(report: PermissionRequestReport, fallbackSession: string): PendingPermission {
  const offer = report.allowAlways;
  return {
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
    state: 'pending',
  };
}

export function errorCode(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'number' ? code : undefined;
}

export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (typeof error === 'string') return error;
  const message = (error as { message?: unknown } | undefined)?.message;
  return typeof message === 'string' ? message : String(error);
}

function isCancellation(error: unknown): boolean {
  const name = (error as { name?: unknown } | undefined)?.name;
  return name === 'Canceled' || name === 'CancellationError';
}

/** vscode-jsonrpc's codes for a connection that closed under a pending request. */
function isConnectionGone(error: unknown): boolean {
  const code = errorCode(error);
  // PendingResponseRejected -32097, ConnectionInactive -32096
  return code === -32097 || code === -32096 || /connection (is|got) (closed|disposed)/i.test(errorMessage(error));
}
