/**
 * ChatController: the coordinator between the webview, the DaveClient and the
 * commands. It owns no rules of its own:
 *
 * - SessionStore (sessionStore.ts) keeps the sessions, their items and
 *   transcripts, persists them, and decides what `messages` a query carries;
 * - TurnRunner (turnRunner.ts) runs a prompt's turn: the query, the turn
 *   reducer (turnReducer.ts) over its reports, and the reducer's effects;
 * - ViewUpdates (viewUpdates.ts) is what the webview is told, of the active
 *   session only;
 * - ServerSessions (serverSessions.ts) learns what the server knows of the
 *   sessions (dave/listSessions, dave/history) and the meter after a turn;
 * - the client's PermissionLedger (protocol/permissions.ts) owns every
 *   permission request's state: answers go through it, cards mirror it, and
 *   so do the proposals' diff editors (review.ts, ProposalReview);
 * - TurnChanges (changes.ts) keeps the "N files changed" row of a turn that
 *   changed files: Review opens its diffs (dave/changes), Undo reverts it, or
 *   one file or hunk of it (dave/revertChanges), through the host's ChangesUi;
 * - SessionRewind (rewind.ts) runs a message's Rewind and Fork (dave/rewind,
 *   dave/fork) and a rewind card's Review;
 * - RunningTurns (runningTurns.ts) knows which sessions have a turn running
 *   (and on which client) and which are between Send and their query;
 * - PromptQueue (promptQueue.ts) keeps the prompts that wait for a turn;
 * - ContextChips (promptContext.ts) keeps the message box's chips (Ask Dave
 *   About Selection), which go with the next prompt as its `context`;
 * - sessionSettings.ts applies the pickers, and codeActions.ts runs a code
 *   block's Copy, Insert and Apply and a tool row's file.
 *
 * It has no state of its own. It imports nothing from `vscode`: extension.ts
 * gives it the client, the store and a way to post to the webview, and tests
 * drive it against the real server.
 */

import type { ChangedFile, HunkRef, RevertChangesResult } from '../protocol/changeTypes';
import type { DaveClient, PermissionExtra } from '../protocol/daveClient';
import type { ActiveFileContext } from '../protocol/editorTypes';
import { errorMessage } from '../protocol/errors';
import type { QueryOutcome } from '../protocol/query';
import type { RewindResult } from '../protocol/sessionTypes';
import type { ImageAttachment, PermissionMode, TranscriptMessage } from '../protocol/types';
import type {
  ChatItem,
  ChatViewState,
  ContextChip,
  FromWebview,
  PermissionAnswer,
  QueuedPrompt,
  ToWebview,
  Welcome,
} from '../shared/messages';
import { TurnChanges, type ChangesUi } from './changes';
import { runCodeAction } from './codeActions';
import { ContextChips, promptContext } from './promptContext';
import { PromptQueue } from './promptQueue';
import type { ProposalReview } from './review';
import { SessionRewind } from './rewind';
import { RunningTurns } from './runningTurns';
import { ServerSessions } from './serverSessions';
import { configureSession } from './sessionSettings';
import { SessionStore, type Session, type StateStore } from './sessionStore';
import { answerNote } from './turnReducer';
import { TurnRunner } from './turnRunner';
import { ViewUpdates } from './viewUpdates';

export { STORAGE_KEY, type StateStore } from './sessionStore';
export type { ChangePick, ChangesUi } from './changes';
export { answerNote } from './turnReducer';

/** What a prompt with only context chips asks. */
export const CHIPS_ONLY_PROMPT = 'Explain this code.';

export interface ChatHost {
  /**
   * The connected client, starting the server if needed; rejects with a readable error.
   * onInstalling: called if the server must be installed first (a minute, once).
   */
  getClient(onInstalling?: () => void): Promise<DaveClient>;
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
  /**
   * The active editor's file and selection for a prompt's `context.activeFile`
   * (issue 15); undefined when there is none or the `dave.context.activeFile`
   * setting is off.
   */
  activeFile?(): ActiveFileContext | undefined;
  /** Workspace files matching an `@` completion's query, relative to the workspace. */
  findFiles?(query: string): Promise<string[]>;
  /** The permission mode a session starts in (the `dave.permissionMode` setting). */
  defaultPermissionMode?(): PermissionMode;
  /** The backend and model, for the first open's welcome. */
  welcome?(): Welcome;
  /** A code block's Copy: puts the text on the clipboard. */
  copyText?(text: string): Promise<void>;
  /** A code block's Insert at cursor: into the last active editor; a problem to show, or undefined when done. */
  insertText?(text: string): Promise<string | undefined>;
  /** A file tool's row: opens the file (absolute, or relative to the workspace). */
  openFile?(file: string): Promise<void>;
  /** A code block's Apply (applyCode.ts): opens its reviewed edit; the line for the status line. */
  applyCode?(code: string, info: string | undefined): Promise<string>;
}

/** What a prompt carries besides its text. */
export interface SendOptions {
  attachments?: ImageAttachment[];
}

export class ChatController {
  private readonly store: SessionStore;
  private readonly turns: RunningTurns;
  /** Review and Undo of the turns' "files changed" rows. */
  private readonly changes: TurnChanges;
  private readonly queue = new PromptQueue();
  /** The message box's context chips. */
  private readonly chips: ContextChips;
  private readonly view: ViewUpdates;
  private readonly serverSessions: ServerSessions;
  private readonly runner: TurnRunner;
  private readonly rewinds: SessionRewind;

  constructor(private readonly host: ChatHost) {
    this.store = new SessionStore(host.store, (message) => host.log?.(message));
    this.changes = new TurnChanges(this.store, host);
    this.turns = new RunningTurns((busy) => host.onBusyChanged?.(busy));
    this.chips = new ContextChips((chips) => host.post({ type: 'chips', chips }));
    this.view = new ViewUpdates(host, this.store, this.turns, this.queue, this.chips);
    this.serverSessions = new ServerSessions(host, this.store, this.view);
    const { store, turns, queue, view, changes, serverSessions } = this;
    this.runner = new TurnRunner(host, { store, turns, queue, view, changes, serverSessions });
    this.rewinds = new SessionRewind(host, store, view, turns, queue);
  }

  get activeSessionId(): string | undefined {
    return this.store.activeId;
  }

  /** The view's whole state, for `ready` and session switches. */
  viewState(): ChatViewState {
    return this.view.state();
  }

  /** The context chips in the message box. */
  contextChips(): ContextChip[] {
    return this.chips.list();
  }

  /** Puts a selection into the message box as a chip (Ask Dave About Selection); it goes with the next prompt. */
  addContext(chip: Omit<ContextChip, 'id'>): ContextChip {
    return this.chips.add(chip);
  }

  /** The × of a chip. */
  removeContext(id: string): boolean {
    return this.chips.remove(id);
  }

  /** The prompts waiting in a session (the active one by default). */
  queued(sessionId?: string): QueuedPrompt[] {
    return this.queue.list(sessionId ?? this.store.activeId);
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
        this.view.postState();
        void this.refreshServerSessions();
        break;
      case 'send':
        await this.send(message.text, undefined, message.attachments === undefined ? {} : { attachments: message.attachments });
        break;
      case 'unqueue':
        this.unqueue(message.id);
        break;
      case 'setModel':
        await this.setModel(message.model);
        break;
      case 'setPermissionMode':
        await this.setPermissionMode(message.mode);
        break;
      case 'listCommands':
        await this.postCommands();
        break;
      case 'findFiles':
        await this.postFiles(message.query);
        break;
      case 'stop':
        this.stop();
        break;
      case 'permission':
        await this.answerPermission(message.requestId, message.decision, message.reason, {
          ...(message.answers !== undefined ? { answers: message.answers } : {}),
          ...(message.permissionMode !== undefined ? { permissionMode: message.permissionMode } : {}),
        });
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
      case 'rewind':
        await this.rewind(message.itemId, message.files);
        break;
      case 'fork':
        await this.fork(message.itemId);
        break;
      case 'reviewRewind':
        await this.rewinds.review(message.itemId, message.path);
        break;
      case 'removeContext':
        this.removeContext(message.id);
        break;
      case 'copyCode':
      case 'insertCode':
      case 'applyCode':
      case 'openFile': {
        const note = await runCodeAction(this.host, message);
        if (note !== undefined) this.postStatusNote(note);
        break;
      }
    }
  }

  /** A line in the status line that no turn owns (a turn's next status replaces it). */
  postStatusNote(text: string): void {
    const active = this.store.active();
    if (active !== undefined && this.turns.isBusy(active.id)) return;
    this.host.post({ type: 'status', text });
  }

  newSession(): string {
    const session = this.store.create();
    this.view.postState();
    return session.id;
  }

  switchSession(sessionId: string): void {
    if (this.store.activate(sessionId)) this.view.postState();
  }

  /**
   * Sends a prompt on the active session (a new one if none); resolves when its
   * turn ends. While the session's turn runs, the prompt waits in the queue and
   * runs after it (and after any queued before it); removed, it resolves undefined.
   */
  async send(text: string, sessionId?: string, options: SendOptions = {}): Promise<QueryOutcome | undefined> {
    // The chips go with this prompt, whether it runs now or waits.
    const chips = text.trim().startsWith('/') ? [] : this.chips.take();
    const prompt = text.trim() === '' && chips.length > 0 ? CHIPS_ONLY_PROMPT : text.trim();
    if (prompt === '') return undefined;
    let session = this.store.get(sessionId ?? this.store.activeId);
    if (session === undefined) {
      this.newSession();
      session = this.store.active()!;
    }
    const context = promptContext(prompt, chips, () => this.host.activeFile?.(), this.host.cwd);
    const contextLabels = chips.map((c) => c.label);
    const attachments = options.attachments ?? [];
    if (this.turns.isBusy(session.id) || this.queue.has(session.id)) {
      const { outcome } = this.queue.add(session.id, { text: prompt, attachments, context, contextLabels });
      this.view.postQueue(session);
      return outcome;
    }
    return this.runner.run(session, prompt, attachments, context, contextLabels);
  }

  /** Removes a queued prompt before it runs; false when it is not waiting (any more). */
  unqueue(id: string): boolean {
    const sessionId = this.queue.remove(id);
    const session = sessionId === undefined ? undefined : this.store.get(sessionId);
    if (session !== undefined) this.view.postQueue(session);
    return sessionId !== undefined;
  }

  /** Stops the running query of a session (the active one by default). */
  stop(sessionId?: string): boolean {
    const session = this.store.get(sessionId ?? this.store.activeId);
    const query = session === undefined ? undefined : this.turns.get(session.id)?.query;
    if (session === undefined || query === undefined) return false;
    query.cancel();
    this.view.setStatus(session, 'Stopping…');
    return true;
  }

  /**
   * Answers a card's request through the ledger of the client that asked; a card
   * that is not pending there is left alone. An allow of a proposal carries the
   * diff editor's right side as `editedContent` when the user changed it.
   */
  async answerPermission(
    requestId: string,
    decision: PermissionAnswer,
    reason?: string,
    extra: Pick<PermissionExtra, 'answers' | 'permissionMode'> = {},
  ): Promise<void> {
    const entry = this.turns.pendingRequest(requestId);
    if (entry === undefined) return;
    const [sessionId, turn, request] = entry;
    const edited = decision === 'deny' ? undefined : this.host.proposals?.editedContent(requestId);
    const note = answerNote(request.questions, request.plan, decision, reason, extra);
    try {
      await turn.client.answerPermission(requestId, decision, reason, undefined, edited, {
        ...extra,
        ...(note !== undefined ? { note } : {}),
      });
      // An approved plan switches the session's mode (the server remembers it too).
      const session = this.store.get(sessionId);
      if (request.plan !== undefined && decision !== 'deny' && session !== undefined) {
        session.permissionMode = extra.permissionMode ?? 'default';
        this.view.postSettings(session);
      }
    } catch (error) {
      // The ledger has expired the request, and its card says why.
      this.host.log?.(`dave: answering permission ${requestId} failed: ${errorMessage(error)}`);
    }
  }

  async deleteSession(sessionId: string): Promise<boolean> {
    const session = this.store.get(sessionId);
    if (session === undefined) return false;
    if (this.host.confirmDelete !== undefined && !(await this.host.confirmDelete(session.title))) return false;
    this.queue.clear(sessionId);
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
    this.view.postState();
    if (problem !== undefined) this.host.post({ type: 'status', text: `The server could not delete the session: ${problem}` });
    return true;
  }

  /** Adds sessions the server knows (dave/listSessions) that this window does not. */
  refreshServerSessions(): Promise<void> {
    return this.serverSessions.refresh();
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

  /** A message's "Rewind to here" (`files`) or "Rewind chat only" (rewind.ts). */
  rewind(itemId: string, files = true): Promise<RewindResult | undefined> {
    return this.rewinds.rewind(itemId, files);
  }

  /** A message's "Fork from here": the forked session's id, now the active one. */
  fork(itemId: string): Promise<string | undefined> {
    return this.rewinds.fork(itemId);
  }

  /** Writes pending state now (on deactivate). */
  async flush(): Promise<void> {
    await this.store.flush();
  }

  // ---- pickers, commands, files (issue 16) -------------------------------

  /** The model of the active session ("" for the backend's default): dave/setModel, or the session's first query. */
  async setModel(model: string): Promise<void> {
    const session = this.activeOrNew();
    session.model = model;
    this.view.postSettings(session);
    await this.configure(session, (client) => client.setModel(session.id, model), { model });
    this.store.scheduleSave(0);
  }

  /** The permission mode of the active session: dave/setPermissionMode, or dave/newSession for one the server does not know yet. */
  async setPermissionMode(mode: PermissionMode): Promise<void> {
    const session = this.activeOrNew();
    session.permissionMode = mode;
    this.view.postSettings(session);
    await this.configure(session, (client) => client.setPermissionMode(session.id, mode), { permissionMode: mode });
    this.store.scheduleSave(0);
  }

  private async configure(
    session: Session,
    change: (client: DaveClient) => Promise<void>,
    settings: { model?: string; permissionMode?: PermissionMode },
  ): Promise<void> {
    const problem = await configureSession(() => this.host.getClient(), session, change, settings);
    if (problem !== undefined) this.view.setStatus(session, problem);
  }

  private async postCommands(): Promise<void> {
    try {
      const client = await this.host.getClient();
      const session = this.store.active();
      const known = session !== undefined && (session.history.length > 0 || session.resumed === true);
      const commands = await client.listCommands(known ? session.id : undefined);
      this.host.post({ type: 'commands', commands });
    } catch (error) {
      this.host.log?.(`dave: listCommands failed: ${errorMessage(error)}`);
      this.host.post({ type: 'commands', commands: [] });
    }
  }

  private async postFiles(query: string): Promise<void> {
    let paths: string[] = [];
    try {
      paths = (await this.host.findFiles?.(query)) ?? [];
    } catch (error) {
      this.host.log?.(`dave: finding files failed: ${errorMessage(error)}`);
    }
    this.host.post({ type: 'files', query, paths });
  }

  private activeOrNew(): Session {
    const active = this.store.active();
    if (active !== undefined) return active;
    this.newSession();
    return this.store.active()!;
  }
}
