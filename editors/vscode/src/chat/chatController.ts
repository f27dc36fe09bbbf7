/**
 * ChatController: the chat's state, between the DaveClient and the view.
 *
 * It owns the sessions the view lists, each with the items on screen and the
 * transcript sent as `messages`, turns query events into view messages, and
 * persists everything through a Memento-like store so the chat survives a
 * window reload. It imports nothing from `vscode`: extension.ts gives it the
 * client, the store and a way to post to the webview, and tests drive it
 * against the real server.
 */

import type { DaveClient, PendingPermission, QueryOutcome, RunningQuery } from '../protocol/daveClient';
import { errorMessage } from '../protocol/daveClient';
import type { ServerSessionInfo, TranscriptMessage } from '../protocol/types';
import type {
  ChatItem,
  ChatViewState,
  FromWebview,
  PermissionAnswer,
  SessionSummary,
  ToWebview,
} from '../shared/messages';

export const STORAGE_KEY = 'dave.chat.v1';
/** Items kept per session in storage; older ones are dropped from the view, not from `messages`. */
const MAX_STORED_ITEMS = 400;
const MAX_STORED_SESSIONS = 50;

export interface StateStore {
  get<T>(key: string): T | undefined;
  update(key: string, value: unknown): PromiseLike<void>;
}

export interface ChatHost {
  /** The connected client, starting the server if needed; rejects with a readable error. */
  getClient(): Promise<DaveClient>;
  /** Posts to the webview; a no-op while no view is shown. */
  post(message: ToWebview): void;
  store: StateStore;
  /** Asks before deleting a session; true to go ahead. */
  confirmDelete?(title: string): Promise<boolean>;
  log?(message: string): void;
  /** The sessions' working folder, to show paths relative to it. */
  cwd?(): string | undefined;
  /** Called when the active session starts or stops working. */
  onBusyChanged?(busy: boolean): void;
}

interface SessionRecord {
  id: string;
  title: string;
  createdAt: number;
  items: ChatItem[];
  /** The transcript, oldest first, as `dave/query` wants it in `messages`. */
  history: TranscriptMessage[];
  resumed?: boolean;
  running?: RunningQuery;
  status: string;
}

interface StoredState {
  activeSessionId?: string;
  sessions: Array<Pick<SessionRecord, 'id' | 'title' | 'createdAt' | 'items' | 'history' | 'resumed'>>;
}

function newSessionId(): string {
  return `vscode-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
}

const TITLE_LENGTH = 48;
function titleFrom(prompt: string): string {
  const line = prompt.trim().split('\n')[0]?.trim() ?? '';
  return line.length > TITLE_LENGTH ? `${line.slice(0, TITLE_LENGTH - 1)}…` : line || 'New session';
}

function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** `file` relative to `cwd` when it lies inside it, as the server's summaries do. */
export function relativeTo(cwd: string | undefined, file: string): string {
  if (cwd === undefined || cwd === '') return file;
  const base = cwd.endsWith('/') ? cwd : `${cwd}/`;
  return file.startsWith(base) && file.length > base.length ? file.slice(base.length) : file;
}

/** A few words for a tool's input: the path, command or pattern it works on. */
export function describeToolInput(toolName: string, input: Record<string, unknown>, cwd?: string): string {
  const str = (key: string): string | undefined => (typeof input[key] === 'string' ? (input[key] as string) : undefined);
  const file = str('file_path') ?? str('path') ?? str('notebook_path');
  const target = (file !== undefined ? relativeTo(cwd, file) : undefined) ?? str('command') ?? str('pattern') ?? str('url') ?? str('query');
  if (target !== undefined) return clip(target, 200);
  if (toolName === '' || Object.keys(input).length === 0) return '';
  return clip(JSON.stringify(input), 200);
}

/** What the permission card shows under its question. */
export function permissionDetail(toolName: string, input: Record<string, unknown>, cwd?: string): string {
  const content = typeof input.content === 'string' ? input.content : undefined;
  const head = describeToolInput(toolName, input, cwd);
  if (content !== undefined) return clip(`${head}\n${content}`, 800);
  if (typeof input.old_string === 'string' && typeof input.new_string === 'string') {
    return clip(`${head}\n- ${input.old_string}\n+ ${input.new_string}`, 800);
  }
  if (head !== '' && (typeof input.command === 'string' || typeof input.file_path === 'string')) return head;
  return clip(JSON.stringify(input, null, 2), 800);
}

const STATUS_TEXT: Record<string, string> = {
  connecting: 'Starting Claude Code…',
  working: 'Working…',
  compacting: 'Compacting the conversation…',
};

export class ChatController {
  private sessions = new Map<string, SessionRecord>();
  private activeId: string | undefined;
  private itemCounter = 0;
  private saveTimer: ReturnType<typeof setTimeout> | undefined;
  private lastBusy = false;
  /** Sessions between Send and their query's start (the server may be starting). */
  private readonly sending = new Set<string>();

  constructor(private readonly host: ChatHost) {
    this.load();
  }

  get activeSessionId(): string | undefined {
    return this.activeId;
  }

  /** The view's whole state, for `ready` and session switches. */
  viewState(): ChatViewState {
    const active = this.active();
    return {
      sessions: this.summaries(),
      activeSessionId: this.activeId,
      items: active?.items.map((i) => ({ ...i })) ?? [],
      busy: active?.running !== undefined,
      status: active?.status ?? '',
    };
  }

  /** The transcript of a session (tests and "ask" use it). */
  history(sessionId: string): TranscriptMessage[] {
    return [...(this.sessions.get(sessionId)?.history ?? [])];
  }

  items(sessionId: string): ChatItem[] {
    return [...(this.sessions.get(sessionId)?.items ?? [])];
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
    }
  }

  newSession(): string {
    const record: SessionRecord = {
      id: newSessionId(),
      title: 'New session',
      createdAt: Date.now(),
      items: [],
      history: [],
      status: '',
    };
    this.sessions.set(record.id, record);
    this.activeId = record.id;
    this.postState();
    this.scheduleSave(0);
    return record.id;
  }

  switchSession(sessionId: string): void {
    if (!this.sessions.has(sessionId) || sessionId === this.activeId) return;
    this.activeId = sessionId;
    this.postState();
    this.scheduleSave(0);
  }

  /** Sends a prompt on the active session (a new one if none); resolves when the turn ends. */
  async send(text: string, sessionId?: string): Promise<QueryOutcome | undefined> {
    const prompt = text.trim();
    if (prompt === '') return undefined;
    let record = this.sessions.get(sessionId ?? this.activeId ?? '');
    if (record === undefined) {
      this.newSession();
      record = this.active()!;
    }
    if (record.running !== undefined || this.sending.has(record.id)) {
      this.addItem(record, { id: this.nextId(), kind: 'notice', text: 'Dave is still answering: press Stop first.' });
      return undefined;
    }
    const messages = [...record.history];
    if (record.history.length === 0 && !record.resumed) record.title = titleFrom(prompt);
    record.history.push({ role: 'user', content: prompt });
    this.addItem(record, { id: this.nextId(), kind: 'user', text: prompt });
    this.postSessions();

    this.sending.add(record.id);
    try {
      let client: DaveClient;
      try {
        this.setStatus(record, 'Starting the Dave server…');
        client = await this.host.getClient();
      } catch (error) {
        this.setStatus(record, '');
        this.addItem(record, { id: this.nextId(), kind: 'error', message: errorMessage(error) });
        return undefined;
      }
      this.setStatus(record, 'Working…');
      return await this.runQuery(client, record, prompt, messages);
    } finally {
      this.sending.delete(record.id);
      this.scheduleSave(0);
    }
  }

  /** Stops the running query of a session (the active one by default). */
  stop(sessionId?: string): boolean {
    const record = this.sessions.get(sessionId ?? this.activeId ?? '');
    if (record?.running === undefined) return false;
    record.running.cancel();
    this.setStatus(record, 'Stopping…');
    return true;
  }

  async answerPermission(requestId: string, decision: PermissionAnswer, reason?: string): Promise<void> {
    const found = this.findPermission(requestId);
    if (found === undefined || found.item.state !== 'pending') return;
    const { record, item } = found;
    item.state = 'answered';
    item.outcome = decision === 'deny' ? 'Denied' : decision === 'allowAlways' ? 'Allowed always' : 'Allowed';
    this.updateItem(record, item);
    try {
      const client = await this.host.getClient();
      await client.answerPermission(requestId, decision, reason);
    } catch (error) {
      item.state = 'expired';
      item.outcome = `Could not answer: ${errorMessage(error)}`;
      this.updateItem(record, item);
    }
  }

  async deleteSession(sessionId: string): Promise<boolean> {
    const record = this.sessions.get(sessionId);
    if (record === undefined) return false;
    if (this.host.confirmDelete !== undefined && !(await this.host.confirmDelete(record.title))) return false;
    record.running?.cancel();
    let problem: string | undefined;
    try {
      const client = await this.host.getClient();
      await client.deleteSession(sessionId);
    } catch (error) {
      // The local transcript goes anyway; the server forgets it on its own restart.
      problem = errorMessage(error);
      this.host.log?.(`dave: deleteSession ${sessionId} failed: ${problem}`);
    }
    this.sessions.delete(sessionId);
    if (this.activeId === sessionId) {
      const rest = this.ordered();
      this.activeId = rest.at(-1)?.id;
    }
    this.postState();
    if (problem !== undefined) this.host.post({ type: 'status', text: `The server could not delete the session: ${problem}` });
    this.scheduleSave(0);
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
    if (listed === undefined) return;
    let added = false;
    for (const s of listed) {
      if (typeof s?.sessionId !== 'string' || this.sessions.has(s.sessionId)) continue;
      const created = typeof s.createdAt === 'number' ? s.createdAt : Date.parse(String(s.createdAt ?? '')) || Date.now();
      this.sessions.set(s.sessionId, {
        id: s.sessionId,
        title: s.title?.trim() || `Session ${s.sessionId.slice(0, 12)}`,
        createdAt: created,
        items: [
          {
            id: this.nextId(),
            kind: 'notice',
            text: 'Resumed from the server: it keeps the earlier turns of this conversation.',
          },
        ],
        history: [],
        resumed: true,
        status: '',
      });
      added = true;
    }
    if (added) {
      this.activeId ??= this.ordered().at(-1)?.id;
      this.postState();
      this.scheduleSave(0);
    }
  }

  /** The server went away: close what can no longer be answered. */
  serverStopped(): void {
    for (const record of this.sessions.values()) {
      for (const item of record.items) {
        if (item.kind === 'permission' && (item.state === 'pending' || item.state === 'answered')) {
          item.state = 'expired';
          item.outcome = 'The server stopped before this was resolved';
          this.updateItem(record, item);
        }
      }
    }
  }

  /** Writes pending state now (on deactivate). */
  async flush(): Promise<void> {
    if (this.saveTimer !== undefined) clearTimeout(this.saveTimer);
    this.saveTimer = undefined;
    await this.save();
  }

  private async runQuery(
    client: DaveClient,
    record: SessionRecord,
    prompt: string,
    messages: TranscriptMessage[],
  ): Promise<QueryOutcome> {
    let assistant: Extract<ChatItem, { kind: 'assistant' }> | undefined;
    let thinking: Extract<ChatItem, { kind: 'thinking' }> | undefined;
    let lastError: string | undefined;
    const cards = new Map<string, Extract<ChatItem, { kind: 'permission' }>>();
    const closeText = (): void => {
      if (assistant !== undefined) {
        assistant.streaming = false;
        this.updateItem(record, assistant);
      }
      assistant = undefined;
      thinking = undefined;
    };

    const query = client.query(
      { sessionId: record.id, prompt, messages },
      {
        onToken: (text) => {
          thinking = undefined;
          if (assistant === undefined) {
            assistant = { id: this.nextId(), kind: 'assistant', text, streaming: true };
            this.addItem(record, assistant);
          } else {
            assistant.text += text;
            this.appendText(record, assistant.id, text);
          }
          this.scheduleSave(2000);
        },
        onThinking: (text) => {
          if (thinking === undefined) {
            closeText();
            thinking = { id: this.nextId(), kind: 'thinking', text };
            this.addItem(record, thinking);
          } else {
            thinking.text += text;
            this.appendText(record, thinking.id, text);
          }
        },
        onToolUse: (r) => {
          closeText();
          this.addItem(record, {
            id: this.nextId(),
            kind: 'tool',
            toolUseId: r.toolUseId,
            toolName: r.toolName,
            summary: describeToolInput(r.toolName, r.input ?? {}, this.host.cwd?.()),
            isError: false,
            done: false,
          });
        },
        onToolResult: (r) => {
          closeText();
          const row = record.items.find(
            (i): i is Extract<ChatItem, { kind: 'tool' }> => i.kind === 'tool' && i.toolUseId === r.toolUseId,
          );
          if (row !== undefined) {
            row.summary = r.summary || row.summary;
            row.isError = r.isError;
            row.done = true;
            this.updateItem(record, row);
          } else {
            this.addItem(record, {
              id: this.nextId(),
              kind: 'tool',
              toolUseId: r.toolUseId,
              toolName: r.toolName,
              summary: r.summary,
              isError: r.isError,
              done: true,
            });
          }
        },
        onPermissionRequest: (p: PendingPermission) => {
          closeText();
          const card: Extract<ChatItem, { kind: 'permission' }> = {
            id: this.nextId(),
            kind: 'permission',
            requestId: p.requestId,
            toolName: p.toolName,
            message: p.message,
            detail: permissionDetail(p.toolName, p.input, this.host.cwd?.()),
            ...(p.allowAlways !== undefined ? { allowAlways: { ...p.allowAlways } } : {}),
            state: 'pending',
          };
          cards.set(p.requestId, card);
          this.addItem(record, card);
          this.setStatus(record, `Waiting for your answer: ${p.message}`);
        },
        onPermissionResolved: (_p, r) => {
          const card = cards.get(r.requestId);
          if (card === undefined) {
            // Allowed without asking. Name the rule, so that a rule added long ago
            // is never silent; the mode (or an older server, with no rule) needs no line.
            if (r.by === 'rule' && r.decision === 'allow' && typeof r.rule === 'string' && r.rule !== '') {
              closeText();
              this.addItem(record, { id: this.nextId(), kind: 'notice', text: `Allowed by rule ${r.rule}` });
            }
            return;
          }
          card.state = r.decision === 'allow' ? 'allowed' : 'denied';
          card.outcome = resolvedText(r.decision, r.by, card.outcome, r.rule);
          this.updateItem(record, card);
          this.setStatus(record, 'Working…');
        },
        onStatus: (r) => {
          if (r.message === undefined) this.setStatus(record, STATUS_TEXT[r.state] ?? r.state);
        },
        onMessage: (message) => this.setStatus(record, message),
        onErrorReport: (message) => {
          lastError = message;
          closeText();
          this.addItem(record, { id: this.nextId(), kind: 'error', message });
        },
      },
    );
    record.running = query;
    this.postBusy(record);

    const outcome = await query.outcome;
    record.running = undefined;
    closeText();
    switch (outcome.kind) {
      case 'done': {
        const text = outcome.result.text;
        if (query.text === '' && text !== '') {
          // Nothing streamed: show the result itself.
          this.addItem(record, { id: this.nextId(), kind: 'assistant', text, streaming: false });
        } else if (query.text !== text) {
          this.host.log?.(`dave: streamed text differs from the result text in session ${record.id}`);
        }
        record.history.push({ role: 'assistant', content: text });
        this.setStatus(record, '');
        break;
      }
      case 'cancelled':
        if (outcome.partialText !== '') record.history.push({ role: 'assistant', content: outcome.partialText });
        this.addItem(record, { id: this.nextId(), kind: 'notice', text: 'Stopped.' });
        this.setStatus(record, '');
        break;
      case 'failed':
        if (outcome.partialText !== '') record.history.push({ role: 'assistant', content: outcome.partialText });
        if (outcome.message !== lastError) {
          this.addItem(record, { id: this.nextId(), kind: 'error', message: outcome.message });
        }
        this.setStatus(record, '');
        break;
    }
    for (const card of cards.values()) {
      if (card.state === 'pending' || card.state === 'answered') {
        card.state = 'expired';
        card.outcome = outcome.kind === 'cancelled' ? 'Cancelled' : 'No longer waiting for an answer';
        this.updateItem(record, card);
      }
    }
    this.postBusy(record);
    this.postSessions();
    return outcome;
  }

  // ---- view updates ----------------------------------------------------

  private nextId(): string {
    this.itemCounter += 1;
    return `i${Date.now().toString(36)}${this.itemCounter}`;
  }

  private active(): SessionRecord | undefined {
    return this.activeId === undefined ? undefined : this.sessions.get(this.activeId);
  }

  private ordered(): SessionRecord[] {
    return [...this.sessions.values()].sort((a, b) => a.createdAt - b.createdAt);
  }

  private summaries(): SessionSummary[] {
    return this.ordered().map((s) => ({
      id: s.id,
      title: s.title,
      busy: s.running !== undefined,
      ...(s.resumed ? { resumed: true } : {}),
    }));
  }

  private isActive(record: SessionRecord): boolean {
    return record.id === this.activeId;
  }

  private postState(): void {
    this.host.post({ type: 'state', state: this.viewState() });
    this.notifyBusy();
  }

  private postSessions(): void {
    this.host.post({ type: 'sessions', sessions: this.summaries(), activeSessionId: this.activeId });
  }

  private postBusy(record: SessionRecord): void {
    if (this.isActive(record)) this.host.post({ type: 'busy', busy: record.running !== undefined });
    this.postSessions();
    this.notifyBusy();
  }

  private notifyBusy(): void {
    const busy = this.active()?.running !== undefined;
    if (busy !== this.lastBusy) {
      this.lastBusy = busy;
      this.host.onBusyChanged?.(busy);
    }
  }

  private setStatus(record: SessionRecord, text: string): void {
    record.status = text;
    if (this.isActive(record)) this.host.post({ type: 'status', text });
  }

  private addItem(record: SessionRecord, item: ChatItem): void {
    record.items.push(item);
    if (this.isActive(record)) this.host.post({ type: 'append', item: { ...item } });
  }

  private updateItem(record: SessionRecord, item: ChatItem): void {
    if (this.isActive(record)) this.host.post({ type: 'update', item: { ...item } });
  }

  private appendText(record: SessionRecord, itemId: string, text: string): void {
    if (this.isActive(record)) this.host.post({ type: 'appendText', itemId, text });
  }

  private findPermission(
    requestId: string,
  ): { record: SessionRecord; item: Extract<ChatItem, { kind: 'permission' }> } | undefined {
    for (const record of this.sessions.values()) {
      for (const item of record.items) {
        if (item.kind === 'permission' && item.requestId === requestId) return { record, item };
      }
    }
    return undefined;
  }

  // ---- persistence -----------------------------------------------------

  private load(): void {
    let stored: StoredState | undefined;
    try {
      stored = this.host.store.get<StoredState>(STORAGE_KEY);
    } catch {
      stored = undefined;
    }
    if (stored === undefined || !Array.isArray(stored.sessions)) return;
    for (const s of stored.sessions) {
      if (typeof s?.id !== 'string') continue;
      const items = (Array.isArray(s.items) ? s.items : []).map((item): ChatItem => {
        if (item.kind === 'assistant') return { ...item, streaming: false };
        if (item.kind === 'permission' && (item.state === 'pending' || item.state === 'answered')) {
          return { ...item, state: 'expired', outcome: 'No longer waiting for an answer' };
        }
        return item;
      });
      this.sessions.set(s.id, {
        id: s.id,
        title: typeof s.title === 'string' ? s.title : 'Session',
        createdAt: typeof s.createdAt === 'number' ? s.createdAt : 0,
        items,
        history: Array.isArray(s.history) ? s.history.filter((m) => m && typeof m.content === 'string') : [],
        status: '',
        ...(s.resumed ? { resumed: true } : {}),
      });
    }
    this.activeId =
      stored.activeSessionId !== undefined && this.sessions.has(stored.activeSessionId)
        ? stored.activeSessionId
        : this.ordered().at(-1)?.id;
  }

  private scheduleSave(delayMs: number): void {
    if (this.saveTimer !== undefined) {
      if (delayMs > 0) return; // a save is already coming
      clearTimeout(this.saveTimer);
    }
    this.saveTimer = setTimeout(() => {
      this.saveTimer = undefined;
      void this.save();
    }, delayMs);
  }

  private async save(): Promise<void> {
    const sessions = this.ordered()
      .slice(-MAX_STORED_SESSIONS)
      .map((s) => ({
        id: s.id,
        title: s.title,
        createdAt: s.createdAt,
        items: s.items.slice(-MAX_STORED_ITEMS),
        history: s.history,
        ...(s.resumed ? { resumed: true } : {}),
      }));
    const state: StoredState = { sessions };
    if (this.activeId !== undefined) state.activeSessionId = this.activeId;
    try {
      await this.host.store.update(STORAGE_KEY, state);
    } catch (error) {
      this.host.log?.(`dave: could not save the chat: ${errorMessage(error)}`);
    }
  }
}

function resolvedText(decision: 'allow' | 'deny', by: string, answered: string | undefined, rule?: string): string {
  const named = rule !== undefined && rule !== '';
  if (by === 'user' && decision === 'allow' && named) return `Allowed always: added the rule ${rule}`;
  if (by === 'user') return answered ?? (decision === 'allow' ? 'Allowed' : 'Denied');
  if (by === 'rule' && named) return decision === 'allow' ? `Allowed by rule ${rule}` : `Denied by rule ${rule}`;
  if (by === 'rule') return decision === 'allow' ? 'Allowed by a rule' : 'Denied by a rule';
  if (by === 'mode') return decision === 'allow' ? 'Allowed by the permission mode' : 'Denied by the permission mode';
  if (by === 'cancel') return 'Cancelled';
  return decision === 'allow' ? 'Allowed' : 'Denied';
}
