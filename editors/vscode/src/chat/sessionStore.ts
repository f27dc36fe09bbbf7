/**
 * SessionStore: the chat's sessions, each with its items on screen and its
 * transcript, kept in a Memento-like store (the workspace state) so that the
 * chat survives a window reload; at most MAX_STORED_SESSIONS sessions of
 * MAX_STORED_ITEMS items each are written. No `vscode` import, no view.
 *
 * It also keeps the transcript rule, which the Neovim plugin shares: a query
 * carries the transcript as `messages` only on its session's first query to
 * each server process (the server may have lost the conversation) and on the
 * first query after one of the session's queries failed; otherwise
 * `messages: []`. A server process is known by its DaveClient object (one per
 * start), which is never stored.
 */

import { errorMessage } from '../protocol/errors';
import type { HistoryEntry, ServerSessionInfo } from '../protocol/sessionTypes';
import type { PermissionMode, TranscriptMessage } from '../protocol/types';
import { PERMISSION_MODES, type ChatItem, type Meter, type SessionSummary } from '../shared/messages';
import { cardAfterReload } from './turnReducer';

export const STORAGE_KEY = 'dave.chat.v1';
/** Items kept per session in storage; older ones are dropped from the view, not from `messages`. */
export const MAX_STORED_ITEMS = 400;
export const MAX_STORED_SESSIONS = 50;

export interface StateStore {
  get<T>(key: string): T | undefined;
  update(key: string, value: unknown): PromiseLike<void>;
}

export interface Session {
  readonly id: string;
  title: string;
  readonly createdAt: number;
  items: ChatItem[];
  /** The transcript, oldest first, as `dave/query` wants it in `messages`. */
  history: TranscriptMessage[];
  /** Listed by the server (dave/listSessions) rather than started here. */
  resumed?: boolean;
  /** The status line, shown while the session is active. */
  status: string;
  /** The server process (its client) that has this transcript; never stored. */
  transcriptAt?: object;
  /** The model the pickers chose ("" or absent: the backend's default). */
  model?: string;
  /** The permission mode, once chosen or learnt from the server (absent: the setting's). */
  permissionMode?: PermissionMode;
  /** The context meter and cost, from the last turn and dave/listSessions. */
  meter?: Meter;
  /** The sum of this window's turns' costUsd, for servers that do not list a session's cost. */
  turnsCost?: number;
}

type StoredSession = Pick<Session, 'id' | 'title' | 'createdAt' | 'items' | 'history' | 'resumed' | 'model' | 'permissionMode' | 'meter'>;

interface StoredState {
  activeSessionId?: string;
  sessions: StoredSession[];
}

function newSessionId(): string {
  return `vscode-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
}

const TITLE_LENGTH = 48;
/** A session's title: the first line of its first prompt that has words, as plain text (no markdown). */
export function titleFrom(prompt: string): string {
  const plain = (line: string): string =>
    line
      .replace(/^\s*(?:#{1,6}\s+|>\s*|[-*+]\s+|\d+[.)]\s+)/, '') // heading, quote, list
      .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1') // links and images: their text
      .replace(/(\*\*|__|~~)(.+?)\1/g, '$2') // bold, strikethrough
      .replace(/(^|\W)[*_](\S(?:.*?\S)?)[*_](?=\W|$)/g, '$1$2') // italics
      .replace(/`+/g, '') // code spans
      .replace(/\s+/g, ' ')
      .trim();
  const line = prompt
    .split('\n')
    .filter((l) => !/^\s*(```|~~~)/.test(l))
    .map(plain)
    .find((l) => l !== '') ?? '';
  return line.length > TITLE_LENGTH ? `${line.slice(0, TITLE_LENGTH - 1)}…` : line || 'New session';
}

/** The line after an answer that a window reload cut off. */
export const INTERRUPTED_TEXT = 'Interrupted: the window reloaded while Dave was answering. Send again to go on.';

/**
 * Items read back from storage: an answer that was still streaming, or a turn
 * still running (its last items after the last prompt have no end), was cut
 * off by the reload; it gets a line that says so. Open cards expire.
 */
function itemsAfterReload(stored: readonly ChatItem[]): ChatItem[] {
  let cut = false;
  const items = stored.map((item): ChatItem => {
    if (item.kind === 'assistant' && item.streaming) cut = true;
    if (item.kind === 'tool' && !item.done) cut = true;
    if (item.kind === 'assistant') return { ...item, streaming: false };
    if (item.kind === 'tool' && !item.done) return { ...item, done: true, isError: true, summary: item.summary };
    if (item.kind === 'permission') return cardAfterReload(item);
    return item;
  });
  if (cut && items.at(-1)?.kind !== 'notice') items.push({ id: `reload-${Date.now().toString(36)}`, kind: 'notice', text: INTERRUPTED_TEXT });
  return items;
}

/** Where the item `id` is, searching from the newest (where updates land). */
function lastIndexOf(items: readonly ChatItem[], id: string): number {
  for (let i = items.length - 1; i >= 0; i--) if (items[i]?.id === id) return i;
  return -1;
}

export class SessionStore {
  private readonly sessions = new Map<string, Session>();
  private activeSessionId: string | undefined;
  private saveTimer: ReturnType<typeof setTimeout> | undefined;
  private itemCounter = 0;

  constructor(
    private readonly state: StateStore,
    private readonly log: (message: string) => void = () => undefined,
  ) {
    this.load();
  }

  get activeId(): string | undefined {
    return this.activeSessionId;
  }

  get(id: string | undefined): Session | undefined {
    return id === undefined ? undefined : this.sessions.get(id);
  }

  active(): Session | undefined {
    return this.get(this.activeSessionId);
  }

  /** Oldest first. */
  ordered(): Session[] {
    return [...this.sessions.values()].sort((a, b) => a.createdAt - b.createdAt);
  }

  summaries(busy: (id: string) => boolean): SessionSummary[] {
    return this.ordered().map((s) => ({
      id: s.id,
      title: s.title,
      busy: busy(s.id),
      ...(s.resumed ? { resumed: true } : {}),
    }));
  }

  /** A new, empty session, made active. */
  create(): Session {
    const session: Session = { id: newSessionId(), title: 'New session', createdAt: Date.now(), items: [], history: [], status: '' };
    this.sessions.set(session.id, session);
    this.activeSessionId = session.id;
    this.scheduleSave(0);
    return session;
  }

  /** Adds a session made elsewhere (a fork, issue 27), made active. */
  add(session: Session): void {
    this.sessions.set(session.id, session);
    this.activeSessionId = session.id;
    this.scheduleSave(0);
  }

  /** Makes a session active; false if it is unknown or already active. */
  activate(id: string): boolean {
    if (!this.sessions.has(id) || id === this.activeSessionId) return false;
    this.activeSessionId = id;
    this.scheduleSave(0);
    return true;
  }

  /** Forgets a session; the newest one left becomes active if it was. */
  delete(id: string): void {
    this.sessions.delete(id);
    if (this.activeSessionId === id) this.activeSessionId = this.ordered().at(-1)?.id;
    this.scheduleSave(0);
  }

  /** Adds the server's sessions (dave/listSessions) that are not here yet; returns their ids. */
  addListed(listed: readonly ServerSessionInfo[]): string[] {
    const added: string[] = [];
    for (const s of listed) {
      if (typeof s?.sessionId !== 'string' || this.sessions.has(s.sessionId)) continue;
      const created = typeof s.createdAt === 'number' ? s.createdAt : Date.parse(String(s.createdAt ?? '')) || Date.now();
      this.sessions.set(s.sessionId, {
        id: s.sessionId,
        title: s.title?.trim() || `Session ${s.sessionId.slice(0, 12)}`,
        createdAt: created,
        items: [
          { id: this.itemId(), kind: 'notice', text: 'Resumed from the server: it keeps the earlier turns of this conversation.' },
        ],
        history: [],
        resumed: true,
        status: '',
        ...(typeof s.model === 'string' && s.model !== '' ? { model: s.model } : {}),
        ...((PERMISSION_MODES as readonly string[]).includes(s.permissionMode ?? '') ? { permissionMode: s.permissionMode as PermissionMode } : {}),
        ...(typeof s.costUsd === 'number' ? { meter: { costUsd: s.costUsd } } : {}),
      });
      added.push(s.sessionId);
    }
    if (added.length > 0) {
      this.activeSessionId ??= this.ordered().at(-1)?.id;
      this.scheduleSave(0);
    }
    return added;
  }

  /**
   * Shows a session this window did not have (one the server listed) as the
   * backend recorded it (`dave/history`): its prompts, answers, thinking and tool
   * uses, and makes that its transcript. Only while the session has nothing of
   * this window's own (its one "resumed" notice), so nothing shown is replaced.
   */
  fillFromHistory(session: Session, entries: readonly HistoryEntry[]): boolean {
    if (entries.length === 0 || session.history.length > 0 || session.items.some((i) => i.kind !== 'notice')) return false;
    const items: ChatItem[] = [];
    const history: TranscriptMessage[] = [];
    for (const entry of entries) {
      if (entry.role === 'user') {
        items.push({ id: this.itemId(), kind: 'user', text: entry.text, ...(entry.images ? { images: entry.images } : {}) });
        history.push({ role: 'user', content: entry.text });
        continue;
      }
      if (entry.thinking) items.push({ id: this.itemId(), kind: 'thinking', text: entry.thinking });
      if (entry.text) {
        items.push({ id: this.itemId(), kind: 'assistant', text: entry.text, streaming: false });
        const last = history.at(-1);
        if (last?.role === 'assistant') last.content += `\n\n${entry.text}`;
        else history.push({ role: 'assistant', content: entry.text });
      }
      for (const tool of entry.toolUses ?? []) {
        items.push({
          id: this.itemId(),
          kind: 'tool',
          toolUseId: tool.toolUseId ?? this.itemId(),
          toolName: tool.toolName,
          summary: tool.summary ?? tool.message ?? tool.toolName,
          isError: tool.isError === true,
          done: true,
        });
      }
    }
    session.items = [{ id: this.itemId(), kind: 'notice', text: 'Resumed from the server: the conversation so far, as the backend recorded it.' }, ...items];
    session.history = history;
    this.scheduleSave(0);
    return true;
  }

  /** A unique id for an item made outside a turn. */
  itemId(): string {
    this.itemCounter += 1;
    return `i${Date.now().toString(36)}${this.itemCounter}`;
  }

  // ---- items -----------------------------------------------------------

  addItem(session: Session, item: ChatItem): void {
    session.items.push(item);
  }

  replaceItem(session: Session, item: ChatItem): void {
    const at = lastIndexOf(session.items, item.id);
    if (at >= 0) session.items[at] = item;
  }

  appendText(session: Session, itemId: string, text: string): void {
    const at = lastIndexOf(session.items, itemId);
    const item = session.items[at];
    if (item !== undefined && (item.kind === 'assistant' || item.kind === 'thinking')) {
      session.items[at] = { ...item, text: item.text + text };
    }
  }

  // ---- the transcript rule ---------------------------------------------

  /** Adds the user's prompt to the transcript; returns the transcript before it. */
  addPrompt(session: Session, prompt: string): TranscriptMessage[] {
    const earlier = [...session.history];
    session.history.push({ role: 'user', content: prompt });
    return earlier;
  }

  addReply(session: Session, text: string): void {
    session.history.push({ role: 'assistant', content: text });
  }

  /**
   * The `messages` of a query of `session` to the server behind `server`:
   * `earlier` (the transcript before the prompt) on the session's first query
   * to that server or its first after a failure, else none.
   */
  messagesFor(session: Session, server: object, earlier: TranscriptMessage[]): TranscriptMessage[] {
    if (session.transcriptAt === server) return [];
    session.transcriptAt = server;
    return earlier;
  }

  /** The server may not have the conversation any more (the query failed): send it again next time. */
  transcriptLost(session: Session): void {
    session.transcriptAt = undefined;
  }

  /** The server went away: every session sends its transcript with its next query. */
  serverStopped(): void {
    for (const session of this.sessions.values()) session.transcriptAt = undefined;
  }

  // ---- persistence -----------------------------------------------------

  /** Writes soon: at once for 0, else within `delayMs` (a save already coming is not postponed). */
  scheduleSave(delayMs: number): void {
    if (this.saveTimer !== undefined) {
      if (delayMs > 0) return;
      clearTimeout(this.saveTimer);
    }
    this.saveTimer = setTimeout(() => {
      this.saveTimer = undefined;
      void this.save();
    }, delayMs);
  }

  /** Writes now (on deactivate). */
  async flush(): Promise<void> {
    if (this.saveTimer !== undefined) clearTimeout(this.saveTimer);
    this.saveTimer = undefined;
    await this.save();
  }

  private load(): void {
    let stored: StoredState | undefined;
    try {
      stored = this.state.get<StoredState>(STORAGE_KEY);
    } catch {
      stored = undefined;
    }
    if (stored === undefined || !Array.isArray(stored.sessions)) return;
    for (const s of stored.sessions) {
      if (typeof s?.id !== 'string') continue;
      const items = itemsAfterReload(Array.isArray(s.items) ? s.items : []);
      this.sessions.set(s.id, {
        id: s.id,
        title: typeof s.title === 'string' ? s.title : 'Session',
        createdAt: typeof s.createdAt === 'number' ? s.createdAt : 0,
        items,
        history: Array.isArray(s.history) ? s.history.filter((m) => m && typeof m.content === 'string') : [],
        status: '',
        ...(s.resumed ? { resumed: true } : {}),
        ...(typeof s.model === 'string' && s.model !== '' ? { model: s.model } : {}),
        ...((PERMISSION_MODES as readonly string[]).includes(s.permissionMode ?? '') ? { permissionMode: s.permissionMode } : {}),
        ...(typeof s.meter === 'object' && s.meter !== null ? { meter: s.meter } : {}),
      });
    }
    this.activeSessionId =
      stored.activeSessionId !== undefined && this.sessions.has(stored.activeSessionId)
        ? stored.activeSessionId
        : this.ordered().at(-1)?.id;
  }

  private async save(): Promise<void> {
    const sessions = this.ordered()
      .slice(-MAX_STORED_SESSIONS)
      .map(
        (s): StoredSession => ({
          id: s.id,
          title: s.title,
          createdAt: s.createdAt,
          items: s.items.slice(-MAX_STORED_ITEMS),
          history: s.history,
          ...(s.resumed ? { resumed: true } : {}),
          ...(s.model !== undefined && s.model !== '' ? { model: s.model } : {}),
          ...(s.permissionMode !== undefined ? { permissionMode: s.permissionMode } : {}),
          ...(s.meter !== undefined ? { meter: s.meter } : {}),
        }),
      );
    const state: StoredState = { sessions };
    if (this.activeSessionId !== undefined) state.activeSessionId = this.activeSessionId;
    try {
      await this.state.update(STORAGE_KEY, state);
    } catch (error) {
      this.log(`dave: could not save the chat: ${errorMessage(error)}`);
    }
  }
}
