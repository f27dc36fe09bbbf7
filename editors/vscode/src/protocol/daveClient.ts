/**
 * DaveClient: the client half of the dave-lsp protocol, free of `vscode`.
 *
 * It owns what a query is on the wire: the `workDoneToken` and its `$/progress`
 * stream, the answers to the permission requests that arrive on it, and
 * cancellation (`$/cancelRequest` through a CancellationToken). The requests'
 * states live in its PermissionLedger (permissions.ts), which it asks before
 * sending an answer and tells what the server reported. It speaks to
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

import { PermissionLedger, type ExpiryReason, type PendingPermission } from './permissions';
import {
  ErrorCodes,
  Methods,
  type ChangeSummary,
  type ChangesResult,
  type DaveCapabilities,
  type DeleteSessionResult,
  type HistoryResult,
  type ImageAttachment,
  type FolderTrustResult,
  type ListCommandsResult,
  type PermissionMode,
  type QueryContext,
  type SlashCommand,
  type ListRulesResult,
  type ListSessionsResult,
  type PermissionDecision,
  type PermissionParams,
  type PermissionResolvedReport,
  type PermissionRule,
  type ProgressValue,
  type QueryFailureData,
  type QueryParams,
  type QueryResult,
  type RemoveRuleResult,
  type RevertChangesParams,
  type RevertChangesResult,
  type StatusReport,
  type ToolResultReport,
  type ToolResultSummary,
  type ToolUseReport,
  type TranscriptMessage,
  type TrustFolderResult,
} from './types';

export const daveProgressType = new ProgressType<ProgressValue>();

/** The part of a JSON-RPC connection that DaveClient needs. */
export interface DaveRpc {
  sendRequest<R>(method: string, params: unknown, token?: CancellationToken): Promise<R>;
  onProgress(token: string | number, handler: (value: ProgressValue) => void): Disposable;
}

/** Anything shaped like a vscode-jsonrpc MessageConnection or a LanguageClient. */
export interface RpcLike {
  sendRequest(method: string, ...params: unknown[]): Promise<unknown>;
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

export type { PendingPermission, PermissionState } from './permissions';

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

/** What an answer carries besides allow or deny (issue 16), and how its card words it. */
export interface PermissionExtra {
  answers?: Record<string, string | string[]>;
  permissionMode?: PermissionMode;
  /** The card's words for the answer, e.g. `Answered: "Which color?" = Blue`. */
  note?: string;
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
  /** The permission requests of this connection's queries, and their states. */
  readonly permissions: PermissionLedger;
  private capabilities: DaveCapabilities | undefined;
  private readonly commands = new Map<string, Promise<SlashCommand[]>>();
  private readonly newToken: () => string;
  private readonly log: (message: string) => void;

  constructor(
    private readonly rpc: DaveRpc,
    options: DaveClientOptions = {},
  ) {
    this.newToken = options.newToken ?? defaultToken;
    this.log = options.log ?? (() => undefined);
    this.permissions = new PermissionLedger((error) => this.log(`dave: a query listener threw: ${errorMessage(error)}`));
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
    return this.permissions.pending(sessionId);
  }

  query(request: QueryRequest, listener: QueryListener = {}): RunningQuery {
    const token = this.newToken();
    const params: QueryParams = {
      sessionId: request.sessionId,
      prompt: request.prompt,
      messages: request.messages ?? [],
      workDoneToken: token,
    };
    if (request.context !== undefined && (request.context.activeFile !== undefined || (request.context.mentions?.length ?? 0) > 0)) {
      params.context = request.context;
    }
    if (request.attachments !== undefined && request.attachments.length > 0) params.attachments = request.attachments;
    if (request.cwd !== undefined) params.cwd = request.cwd;
    if (request.model !== undefined && request.model !== '') params.model = request.model;

    const query: RunningQuery = new RunningQuery(request.sessionId, token, async (cancel) => {
      const ownPermissions = new Set<string>();
      // Register before sending: the first report may arrive before the response.
      const subscription = this.rpc.onProgress(token, (value) => {
        this.dispatch(query, value, listener, ownPermissions);
      });
      let outcome: QueryOutcome;
      let expiry: ExpiryReason = 'queryEnded';
      try {
        const result = await this.rpc.sendRequest<QueryResult>(Methods.query, params, cancel);
        outcome = { kind: 'done', result };
      } catch (error) {
        outcome = this.failureOutcome(error, query, cancel.isCancellationRequested);
        if (outcome.kind === 'cancelled') expiry = 'cancelled';
        else if (isConnectionGone(error)) expiry = 'serverStopped';
      } finally {
        subscription.dispose();
        this.running.delete(query);
      }
      // A request whose query ended can no longer be answered.
      this.permissions.expire(expiry, ownPermissions);
      return outcome;
    });
    this.running.add(query);
    return query;
  }

  /**
   * Answers a permission request once. Returns false, sending nothing, when this
   * client already answered it or saw it resolved; rejects with the server's
   * error otherwise. `editedContent` (the user's version of the request's
   * proposal) goes with an allow only; the server ignores it on a deny.
   */
  async answerPermission(
    requestId: string,
    decision: PermissionDecision,
    reason?: string,
    updatedInput?: Record<string, unknown>,
    editedContent?: string,
    extra: PermissionExtra = {},
  ): Promise<boolean> {
    const known = this.permissions.get(requestId) !== undefined;
    const edited = editedContent !== undefined && decision !== 'deny';
    // A request this client knows is answered once; an unknown id goes to the server, which says.
    if (known && !this.permissions.beginAnswer(requestId, decision, edited, extra.note)) return false;
    const params: PermissionParams = { requestId, decision };
    if (reason !== undefined && reason !== '') params.reason = reason;
    if (updatedInput !== undefined) params.updatedInput = updatedInput;
    if (edited) params.editedContent = editedContent;
    if (extra.answers !== undefined && decision !== 'deny') params.answers = extra.answers;
    if (extra.permissionMode !== undefined && decision !== 'deny') params.permissionMode = extra.permissionMode;
    try {
      await this.rpc.sendRequest<{ ok: boolean }>(Methods.permission, params);
      this.permissions.answerSent(requestId);
      return true;
    } catch (error) {
      this.permissions.answerFailed(requestId, errorMessage(error));
      throw error;
    }
  }

  /** `dave/newSession` with this id (and its settings); false when the server does not offer it. */
  async newSession(params: { sessionId: string; model?: string; permissionMode?: PermissionMode }): Promise<boolean> {
    if (!this.supports(Methods.newSession)) return false;
    await this.rpc.sendRequest<{ sessionId: string }>(Methods.newSession, params);
    return true;
  }

  /** `dave/setModel`; "" for the backend's default. Rejects with -32602 for a session the server does not know. */
  async setModel(sessionId: string, model: string): Promise<void> {
    await this.rpc.sendRequest(Methods.setModel, { sessionId, model: model === '' ? null : model });
  }

  /** `dave/setPermissionMode`. Rejects with -32602 for a session the server does not know. */
  async setPermissionMode(sessionId: string, mode: PermissionMode): Promise<void> {
    await this.rpc.sendRequest(Methods.setPermissionMode, { sessionId, mode });
  }

  /**
   * `dave/listCommands`: the slash commands, cached per server (this client) and
   * per session; [] when the server does not offer it.
   */
  listCommands(sessionId?: string): Promise<SlashCommand[]> {
    if (!this.supports(Methods.listCommands)) return Promise.resolve([]);
    const key = sessionId ?? '';
    let cached = this.commands.get(key);
    if (cached === undefined) {
      const params = sessionId === undefined ? {} : { sessionId };
      cached = this.rpc.sendRequest<ListCommandsResult>(Methods.listCommands, params).then((r) =>
        (Array.isArray(r?.commands) ? r.commands : []).filter((c) => typeof c?.name === 'string' && c.name !== ''),
      );
      // A failure is not kept: the next `/` asks again.
      cached.catch(() => this.commands.delete(key));
      this.commands.set(key, cached);
    }
    return cached;
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

  /** `dave/history`: a session's conversation as the backend recorded it, or undefined when the server does not advertise it. */
  async history(sessionId: string): Promise<HistoryResult | undefined> {
    if (!this.supports(Methods.history)) return undefined;
    const result = await this.rpc.sendRequest<HistoryResult>(Methods.history, { sessionId });
    return { ...result, entries: Array.isArray(result?.entries) ? result.entries : [] };
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

  /**
   * `dave/changes`: what a turn of the session changed (the last turn that changed
   * files by default), or undefined when the server does not advertise it.
   */
  async changes(sessionId: string, turn?: number): Promise<ChangesResult | undefined> {
    if (!this.supports(Methods.changes)) return undefined;
    const params: { sessionId: string; turn?: number } = { sessionId };
    if (turn !== undefined) params.turn = turn;
    const result = await this.rpc.sendRequest<ChangesResult>(Methods.changes, params);
    return {
      sessionId: result?.sessionId ?? sessionId,
      turn: typeof result?.turn === 'number' ? result.turn : null,
      files: Array.isArray(result?.files) ? result.files.filter((f) => typeof f?.path === 'string') : [],
    };
  }

  /** `dave/revertChanges`: restores what a turn changed, all of it, some files or some hunks. */
  async revertChanges(params: RevertChangesParams): Promise<RevertChangesResult> {
    const result = await this.rpc.sendRequest<RevertChangesResult>(Methods.revertChanges, params);
    return {
      reverted: Array.isArray(result?.reverted) ? result.reverted.filter((p) => typeof p === 'string') : [],
      conflicts: Array.isArray(result?.conflicts)
        ? result.conflicts.filter((c) => typeof c?.path === 'string').map((c) => ({ path: c.path, message: String(c.message ?? '') }))
        : [],
    };
  }

  /**
   * `dave/trustFolder`: trusts (or takes back) a folder's Claude Code settings. Undefined when
   * the server does not offer it, an older server that answers MethodNotFound included.
   */
  async trustFolder(path: string, trusted: boolean): Promise<TrustFolderResult | undefined> {
    if (!this.supports(Methods.trustFolder)) return undefined;
    try {
      const result = await this.rpc.sendRequest<TrustFolderResult>(Methods.trustFolder, { path, trusted });
      return { path: typeof result?.path === 'string' ? result.path : path, trusted: result?.trusted === true };
    } catch (error) {
      if (errorCode(error) === ErrorCodes.MethodNotFound) return undefined;
      throw error;
    }
  }

  /** `dave/folderTrust`: whether a folder is trusted and what its settings would run; undefined when not offered. */
  async folderTrust(path: string): Promise<FolderTrustResult | undefined> {
    if (!this.supports(Methods.folderTrust)) return undefined;
    const result = await this.rpc.sendRequest<FolderTrustResult>(Methods.folderTrust, { path });
    const wouldRun = Array.isArray(result?.wouldRun) ? result.wouldRun.filter((line) => typeof line === 'string') : [];
    return {
      path: typeof result?.path === 'string' ? result.path : path,
      trusted: result?.trusted === true,
      runsCode: result?.runsCode === true,
      wouldRun,
    };
  }

  /** Cancels everything and expires every open request; used when the connection goes away. */
  dispose(): void {
    this.permissions.expire('serverStopped');
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
        const permission = this.permissions.open(value, query.sessionId, (p) => listener.onPermissionChange?.(p));
        ownPermissions.add(permission.requestId);
        this.safely(() => listener.onPermissionRequest?.(permission));
        break;
      }
      case 'permissionResolved': {
        const permission = this.permissions.resolve(value) ?? allowedWithoutAsking(value, query.sessionId);
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

  private safely(fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.log(`dave: a query listener threw: ${errorMessage(error)}`);
    }
  }
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
