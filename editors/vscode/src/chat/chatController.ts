/**
 * ChatController: the coordinator between the webview, the DaveClient and the
 * commands. It owns no rules of its own:
 *
 * - SessionStore (sessionStore.ts) keeps the sessions, their items and
 *   transcripts, persists them, and decides what `messages` a query carries;
 * - the turn reducer (turnReducer.ts) turns one query's reports into items and
 *   the status line, as effects that this applies to the store and the view;
 * - the client's PermissionLedger (protocol/permissions.ts) owns every
 *   permission request's state: answers go through it, cards mirror it, and
 *   so do the proposals' diff editors (review.ts, ProposalReview);
 * - TurnChanges (changes.ts) keeps the "N files changed" row of a turn that
 *   changed files: Review opens its diffs (dave/changes), Undo reverts it, or
 *   one file or hunk of it (dave/revertChanges), through the host's ChangesUi.
 *
 * Its own state is which sessions have a turn running (and on which client),
 * and which are between Send and their query. It imports nothing from
 * `vscode`: extension.ts gives it the client, the store and a way to post to
 * the webview, and tests drive it against the real server.
 */

import type { DaveClient, QueryOutcome, RunningQuery } from '../protocol/daveClient';
import { errorMessage } from '../protocol/daveClient';
import type { ChangedFile, HunkRef, RevertChangesResult, ServerSessionInfo, TranscriptMessage } from '../protocol/types';
import type { ChatItem, ChatViewState, FromWebview, PermissionAnswer, ToWebview } from '../shared/messages';
import { TurnChanges, type ChangesUi } from './changes';
import type { ProposalReview } from './review';
import { SessionStore, titleFrom, type Session, type StateStore } from './sessionStore';
import { reduceTurn, startTurn, type TurnEffect, type TurnEvent, type TurnState } from './turnReducer';

export { STORAGE_KEY, type StateStore } from './sessionStore';
export type { ChangePick, ChangesUi } from './changes';

export interface ChatHost {
  /** The connected client, starting the server if needed; rejects with a readable error. */
  getClient(): Promise<DaveClient>;
  /** Posts to the webview; a no-op while no view is shown. */
  post(message: ToWebview): void;
  store: StateStore;
  /** Asks before deleting a session; true to go ahead. */
  confirmDelete?(title: string): Promise<boolean>;
  log?(message: string): void;
  /** Called when the active session starts or stops working. */
  onBusyChanged?(busy: boolean): void;
  /** The folder that file paths are shown relative to (the workspace folder). */
  cwd?: string;
  /** The diff editors of proposals (issue 14); without it, proposals are answered on the card alone. */
  proposals?: ProposalReview;
  /** Review and Undo of a turn's changes; without it they only update the chat. */
  changesUi?: ChangesUi;
}


/** A turn whose query runs: the client it went to, the query, and the reducer's state. */
interface Turn {
  readonly client: DaveClient;
  query?: RunningQuery;
  state: TurnState;
}

export class ChatController {
  private readonly store: SessionStore;
  /** Running turns, by session id. */
  private readonly turns = new Map<string, Turn>();
  /** Sessions between Send and their query's start (the server may be starting). */
  private readonly sending = new Set<string>();
  private lastBusy = false;
  private turnCounter = 0;
  /** Review and Undo of the turns' "files changed" rows. */
  private readonly changes: TurnChanges;

  constructor(private readonly host: ChatHost) {
    this.store = new SessionStore(host.store, (message) => host.log?.(message));
    this.changes = new TurnChanges(this.store, host);
  }

  get activeSessionId(): string | undefined {
    return this.store.activeId;
  }

  /** The view's whole state, for `ready` and session switches. */
  viewState(): ChatViewState {
    const active = this.store.active();
    return {
      sessions: this.summaries(),
      activeSessionId: this.store.activeId,
      items: active?.items.map((i) => ({ ...i })) ?? [],
      busy: active !== undefined && this.turns.has(active.id),
      status: active?.status ?? '',
    };
  }

  /** The transcript of a session (tests and "ask" use it). */
  history(sessionId: string): TranscriptMessage[] {
    return [...(this.store.get(sessionId)?.history ?? [])];
  }

  items(sessionId: string): ChatItem[] {
    return [...(this.store.get(sessionId)?.items ?? [])];
  }

  async handleMessage(message: FromWebview): Promise<void> {
    switch (message.type) {
      case 'ready':
        this.postState();
        void this.refreshServerSessions();
        break;
      case 'send':
        await this.send(message.text);
        break;
      case 'stop':
        this.stop();
        break;
      case 'permission':
        await this.answerPermission(message.requestId, message.decision, message.reason);
        break;
      case 'newSession':
        this.newSession();
        break;
      case 'switchSession':
        this.switchSession(message.sessionId);
        break;
      case 'deleteSession':
        await this.deleteSession(message.sessionId);
        break;
      case 'openProposal':
        this.host.proposals?.reopen(message.requestId);
        break;
      case 'reviewChanges':
        await this.changes.review(message.itemId);
        break;
      case 'undoChanges':
        await this.changes.undo(message.itemId, message.path === undefined ? {} : { paths: [message.path] });
        break;
    }
  }

  newSession(): string {
    const session = this.store.create();
    this.postState();
    return session.id;
  }

  switchSession(sessionId: string): void {
    if (this.store.activate(sessionId)) this.postState();
  }

  /** Sends a prompt on the active session (a new one if none); resolves when the turn ends. */
  async send(text: string, sessionId?: string): Promise<QueryOutcome | undefined> {
    const prompt = text.trim();
    if (prompt === '') return undefined;
    let session = this.store.get(sessionId ?? this.store.activeId);
    if (session === undefined) {
      this.newSession();
      session = this.store.active()!;
    }
    if (this.turns.has(session.id) || this.sending.has(session.id)) {
      this.addItem(session, { id: this.store.itemId(), kind: 'notice', text: 'Dave is still answering: press Stop first.' });
      return undefined;
    }
    if (session.history.length === 0 && !session.resumed) session.title = titleFrom(prompt);
    const earlier = this.store.addPrompt(session, prompt);
    this.addItem(session, { id: this.store.itemId(), kind: 'user', text: prompt });
    this.postSessions();

    this.sending.add(session.id);
    try {
      let client: DaveClient;
      try {
        this.setStatus(session, 'Starting the Dave server…');
        client = await this.host.getClient();
      } catch (error) {
        this.setStatus(session, '');
        this.addItem(session, { id: this.store.itemId(), kind: 'error', message: errorMessage(error) });
        return undefined;
      }
      this.setStatus(session, 'Working…');
      return await this.runQuery(client, session, prompt, this.store.messagesFor(session, client, earlier));
    } finally {
      this.sending.delete(session.id);
      this.store.scheduleSave(0);
    }
  }

  /** Stops the running query of a session (the active one by default). */
  stop(sessionId?: string): boolean {
    const session = this.store.get(sessionId ?? this.store.activeId);
    const query = session === undefined ? undefined : this.turns.get(session.id)?.query;
    if (session === undefined || query === undefined) return false;
    query.cancel();
    this.setStatus(session, 'Stopping…');
    return true;
  }

  /**
   * Answers a card's request through the ledger of the client that asked; a card
   * that is not pending there is left alone. An allow of a proposal carries the
   * diff editor's right side as `editedContent` when the user changed it.
   */
  async answerPermission(requestId: string, decision: PermissionAnswer, reason?: string): Promise<void> {
    const turn = [...this.turns.values()].find((t) => t.client.permissions.get(requestId)?.state === 'pending');
    if (turn === undefined) return;
    const edited = decision === 'deny' ? undefined : this.host.proposals?.editedContent(requestId);
    try {
      await turn.client.answerPermission(requestId, decision, reason, undefined, edited);
    } catch (error) {
      // The ledger has expired the request, and its card says why.
      this.host.log?.(`dave: answering permission ${requestId} failed: ${errorMessage(error)}`);
    }
  }

  async deleteSession(sessionId: string): Promise<boolean> {
    const session = this.store.get(sessionId);
    if (session === undefined) return false;
    if (this.host.confirmDelete !== undefined && !(await this.host.confirmDelete(session.title))) return false;
    this.turns.get(sessionId)?.query?.cancel();
    let problem: string | undefined;
    try {
      const client = await this.host.getClient();
      await client.deleteSession(sessionId);
    } catch (error) {
      // The local transcript goes anyway; the server forgets it on its own restart.
      problem = errorMessage(error);
      this.host.log?.(`dave: deleteSession ${sessionId} failed: ${problem}`);
    }
    this.store.delete(sessionId);
    this.postState();
    if (problem !== undefined) this.host.post({ type: 'status', text: `The server could not delete the session: ${problem}` });
    return true;
  }

  /** Adds sessions the server knows (dave/listSessions) that this window does not. */
  async refreshServerSessions(): Promise<void> {
    let listed: ServerSessionInfo[] | undefined;
    try {
      listed = (await (await this.host.getClient()).listSessions())?.sessions;
    } catch (error) {
      this.host.log?.(`dave: listSessions failed: ${errorMessage(error)}`);
      return;
    }
    if (listed !== undefined && this.store.addListed(listed)) this.postState();
  }

  /**
   * The server went away. Its client has expired its open permission requests
   * (their cards say so); every session sends its transcript with its next query.
   */
  serverStopped(): void {
    this.store.serverStopped();
  }

  // ---- a turn's changes (changes.ts) -------------------------------------

  /** Opens the diffs of a "files changed" row (the active session's last one by default). */
  reviewChanges(itemId?: string): Promise<ChangedFile[] | undefined> {
    return this.changes.review(itemId);
  }

  /** Undoes a "files changed" row's turn (the active session's last by default): all, `paths` or `hunks`. */
  undoChanges(itemId?: string, target: { paths?: string[]; hunks?: HunkRef[] } = {}): Promise<RevertChangesResult | undefined> {
    return this.changes.undo(itemId, target);
  }

  /** "Dave: Review Last Changes". */
  reviewLastChanges(): Promise<void> {
    return this.changes.reviewLast();
  }

  /** "Dave: Undo Last Changes". */
  undoLastChanges(): Promise<RevertChangesResult | undefined> {
    return this.changes.undoLast();
  }

  /** Writes pending state now (on deactivate). */
  async flush(): Promise<void> {
    await this.store.flush();
  }

  private async runQuery(
    client: DaveClient,
    session: Session,
    prompt: string,
    messages: TranscriptMessage[],
  ): Promise<QueryOutcome> {
    this.turnCounter += 1;
    const turn: Turn = { client, state: startTurn(`t${Date.now().toString(36)}-${this.turnCounter}`, this.host.cwd) };
    const apply = (event: TurnEvent): void => this.applyTurn(session, turn, event);
    const query = client.query(
      { sessionId: session.id, prompt, messages },
      {
        onMessage: (text) => apply({ type: 'message', text }),
        onToken: (text) => {
          apply({ type: 'token', text });
          this.store.scheduleSave(2000);
        },
        onThinking: (text) => apply({ type: 'thinking', text }),
        onToolUse: (r) => apply({ type: 'toolUse', toolUseId: r.toolUseId, toolName: r.toolName, message: r.message }),
        onToolResult: (r) =>
          apply({ type: 'toolResult', toolUseId: r.toolUseId, toolName: r.toolName, summary: r.summary, isError: r.isError }),
        onPermissionChange: (permission) => {
          apply({ type: 'permission', permission });
          // The proposal's diff editor follows the ledger like the card does.
          this.host.proposals?.changed(permission);
        },
        onPermissionResolved: (_p, r) =>
          apply({ type: 'permissionResolved', requestId: r.requestId, decision: r.decision, by: r.by, rule: r.rule }),
        onStatus: (r) => apply({ type: 'status', state: r.state, hasMessage: r.message !== undefined }),
        onErrorReport: (message) => apply({ type: 'error', message }),
      },
    );
    turn.query = query;
    this.turns.set(session.id, turn);
    this.postBusy(session);

    const outcome = await query.outcome;
    this.turns.delete(session.id);
    apply({ type: 'end', outcome, streamedText: query.text });
    if (outcome.kind === 'failed') this.store.transcriptLost(session);
    this.postBusy(session);
    return outcome;
  }

  /** One reducer step; the state is stored before the effects run, as they may re-enter (a click on a new card). */
  private applyTurn(session: Session, turn: Turn, event: TurnEvent): void {
    const [state, effects] = reduceTurn(turn.state, event);
    turn.state = state;
    for (const effect of effects) this.applyEffect(session, effect, turn.client);
  }

  private applyEffect(session: Session, effect: TurnEffect, client: DaveClient): void {
    switch (effect.type) {
      case 'append':
        this.addItem(session, effect.item);
        break;
      case 'update':
        this.store.replaceItem(session, effect.item);
        if (this.isActive(session)) this.host.post({ type: 'update', item: { ...effect.item } });
        break;
      case 'appendText':
        this.store.appendText(session, effect.itemId, effect.text);
        if (this.isActive(session)) this.host.post({ type: 'appendText', itemId: effect.itemId, text: effect.text });
        break;
      case 'status':
        this.setStatus(session, effect.text);
        break;
      case 'reply':
        this.store.addReply(session, effect.text);
        break;
      case 'log':
        this.host.log?.(`dave: ${effect.message} in session ${session.id}`);
        break;
      case 'changes':
        this.changes.learnTurn(session, client, effect.itemId);
        break;
    }
  }

  // ---- view updates ----------------------------------------------------

  private summaries(): ChatViewState['sessions'] {
    return this.store.summaries((id) => this.turns.has(id));
  }

  private isActive(session: Session): boolean {
    return session.id === this.store.activeId;
  }

  private postState(): void {
    this.host.post({ type: 'state', state: this.viewState() });
    this.notifyBusy();
  }

  private postSessions(): void {
    this.host.post({ type: 'sessions', sessions: this.summaries(), activeSessionId: this.store.activeId });
  }

  private postBusy(session: Session): void {
    if (this.isActive(session)) this.host.post({ type: 'busy', busy: this.turns.has(session.id) });
    this.postSessions();
    this.notifyBusy();
  }

  private notifyBusy(): void {
    const active = this.store.activeId;
    const busy = active !== undefined && this.turns.has(active);
    if (busy !== this.lastBusy) {
      this.lastBusy = busy;
      this.host.onBusyChanged?.(busy);
    }
  }

  private setStatus(session: Session, text: string): void {
    session.status = text;
    if (this.isActive(session)) this.host.post({ type: 'status', text });
  }

  private addItem(session: Session, item: ChatItem): void {
    this.store.addItem(session, item);
    if (this.isActive(session)) this.host.post({ type: 'append', item: { ...item } });
  }
}
