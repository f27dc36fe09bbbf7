/**
 * ViewUpdates: what the webview is told of the sessions. A session's items,
 * streamed text, status line, busyness, queue, settings and meter go into the
 * store (sessionStore.ts) for every session, and to the view only while it is
 * the active one; the sessions list and the view's whole state (on `ready`
 * and a switch) are built here, and the host hears when the active session
 * starts or stops working.
 */

import type { PermissionMode } from '../protocol/types';
import type { ChatItem, ChatViewState, ContextChip, RetryInfo, SessionSettings, ToWebview, Welcome } from '../shared/messages';
import type { PromptQueue } from './promptQueue';
import type { RunningTurns } from './runningTurns';
import type { Session, SessionStore } from './sessionStore';

/** The part of the chat's host (ChatHost) that the view needs. */
export interface ViewHost {
  post(message: ToWebview): void;
  welcome?(): Welcome;
  defaultPermissionMode?(): PermissionMode;
}

export class ViewUpdates {
  constructor(
    private readonly host: ViewHost,
    private readonly store: SessionStore,
    private readonly turns: RunningTurns,
    private readonly queue: PromptQueue,
    private readonly chips: { list(): ContextChip[] },
  ) {}

  /** The view's whole state, for `ready` and session switches. */
  state(): ChatViewState {
    const active = this.store.active();
    return {
      sessions: this.summaries(),
      activeSessionId: this.store.activeId,
      items: active?.items.map((i) => ({ ...i })) ?? [],
      busy: active !== undefined && this.turns.isRunning(active.id),
      status: active?.status ?? '',
      queued: this.queue.list(active?.id),
      settings: this.settingsOf(active),
      ...(active?.meter !== undefined ? { meter: { ...active.meter } } : {}),
      ...(this.host.welcome !== undefined ? { welcome: this.host.welcome() } : {}),
      chips: this.chips.list(),
    };
  }

  isActive(session: Session): boolean {
    return session.id === this.store.activeId;
  }

  postState(): void {
    this.host.post({ type: 'state', state: this.state() });
    this.notifyBusy();
  }

  postSessions(): void {
    this.host.post({ type: 'sessions', sessions: this.summaries(), activeSessionId: this.store.activeId });
  }

  postBusy(session: Session): void {
    if (this.isActive(session)) this.host.post({ type: 'busy', busy: this.turns.isRunning(session.id) });
    this.postSessions();
    this.notifyBusy();
  }

  postQueue(session: Session): void {
    if (this.isActive(session)) this.host.post({ type: 'queue', queued: this.queue.list(session.id) });
  }

  postSettings(session: Session): void {
    if (this.isActive(session)) this.host.post({ type: 'settings', settings: this.settingsOf(session) });
  }

  postMeter(session: Session): void {
    if (this.isActive(session) && session.meter !== undefined) this.host.post({ type: 'meter', meter: { ...session.meter } });
  }

  setStatus(session: Session, text: string, retry?: RetryInfo): void {
    session.status = text;
    if (this.isActive(session)) this.host.post(retry === undefined ? { type: 'status', text } : { type: 'status', text, retry });
  }

  addItem(session: Session, item: ChatItem): void {
    this.store.addItem(session, item);
    if (this.isActive(session)) this.host.post({ type: 'append', item: { ...item } });
  }

  replaceItem(session: Session, item: ChatItem): void {
    this.store.replaceItem(session, item);
    if (this.isActive(session)) this.host.post({ type: 'update', item: { ...item } });
  }

  appendText(session: Session, itemId: string, text: string): void {
    this.store.appendText(session, itemId, text);
    if (this.isActive(session)) this.host.post({ type: 'appendText', itemId, text });
  }

  private notifyBusy(): void {
    this.turns.notify(this.store.activeId);
  }

  private summaries(): ChatViewState['sessions'] {
    return this.store.summaries((id) => this.turns.isRunning(id));
  }

  private settingsOf(session: Session | undefined): SessionSettings {
    return {
      model: session?.model ?? '',
      permissionMode: session?.permissionMode ?? this.host.defaultPermissionMode?.() ?? 'default',
    };
  }
}
