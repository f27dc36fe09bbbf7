/**
 * DaveClient: the client half of the dave-lsp protocol, free of `vscode`: a
 * method per request, each used only when the server advertises it.
 *
 * It runs the queries (query.ts: a query's params, its `$/progress` reports
 * handed to a listener, its outcome), cancels them (`$/cancelRequest` through
 * a CancellationToken) and sends the answers to the permission requests that
 * arrive on them. The requests' states live in its PermissionLedger
 * (permissions.ts), which it asks before sending an answer and tells what the
 * server reported. It speaks to any JSON-RPC endpoint with `sendRequest` and
 * `onProgress`, so the extension hands it the vscode-languageclient and the
 * tests hand it a raw vscode-jsonrpc connection to the real server.
 */

import { ProgressType, type CancellationToken, type Disposable } from 'vscode-jsonrpc';

import type { ChangesResult, RevertChangesParams, RevertChangesResult, RevertConflict } from './changeTypes';
import { errorCode, errorMessage, isConnectionGone } from './errors';
import { PermissionLedger, type ExpiryReason, type PendingPermission } from './permissions';
import type { ProgressValue } from './progressTypes';
import {
  dispatchReport,
  failureOutcome,
  queryParams,
  RunningQuery,
  type QueryListener,
  type QueryOutcome,
  type QueryRequest,
} from './query';
import type {
  DeleteSessionResult,
  FolderTrustResult,
  ForkParams,
  ForkResult,
  HistoryResult,
  ListCommandsResult,
  ListRulesResult,
  ListSessionsResult,
  PermissionRule,
  RemoveRuleResult,
  RewindParams,
  RewindResult,
  SlashCommand,
  TrustFolderResult,
} from './sessionTypes';
import {
  ErrorCodes,
  Methods,
  type DaveCapabilities,
  type PermissionDecision,
  type PermissionMode,
  type PermissionParams,
  type QueryResult,
} from './types';

/** A result's `conflicts`, of the shape the protocol gives them. */
function conflictsOf(raw: unknown): RevertConflict[] {
  if (!Array.isArray(raw)) return [];
  return (raw as Array<Partial<RevertConflict> | null>)
    .filter((c): c is RevertConflict => typeof c?.path === 'string')
    .map((c) => ({ path: c.path, message: String(c.message ?? '') }));
}

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
    const params = queryParams(request, token);

    const query: RunningQuery = new RunningQuery(request.sessionId, token, async (cancel) => {
      const ownPermissions = new Set<string>();
      // Register before sending: the first report may arrive before the response.
      const subscription = this.rpc.onProgress(token, (value) => {
        dispatchReport(query, value, listener, this.permissions, ownPermissions, this.log);
      });
      let outcome: QueryOutcome;
      let expiry: ExpiryReason = 'queryEnded';
      try {
        const result = await this.rpc.sendRequest<QueryResult>(Methods.query, params, cancel);
        outcome = { kind: 'done', result };
      } catch (error) {
        outcome = failureOutcome(error, query, cancel.isCancellationRequested);
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
      conflicts: conflictsOf(result?.conflicts),
    };
  }

  /** `dave/rewind`: the session back to before `turn`, and (unless `files: false`) its files; rejects -32602 for a turn that does not exist. */
  async rewind(params: RewindParams): Promise<RewindResult> {
    const result = await this.rpc.sendRequest<RewindResult>(Methods.rewind, params);
    return {
      turn: typeof result?.turn === 'number' ? result.turn : params.turn,
      restored: Array.isArray(result?.restored) ? result.restored.filter((p) => typeof p === 'string') : [],
      conflicts: conflictsOf(result?.conflicts),
    };
  }

  /** `dave/fork`: a new session holding turns 1..`turn` (all by default); its id. */
  async fork(params: ForkParams): Promise<string> {
    const result = await this.rpc.sendRequest<ForkResult>(Methods.fork, params);
    if (typeof result?.sessionId !== 'string' || result.sessionId === '') throw new Error('the server did not name the forked session');
    return result.sessionId;
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
}
