/**
 * The typed messages between the chat webview and the extension, and the chat
 * items both sides render. The extension owns the state; the webview renders
 * it and reports what the user did.
 */

export type PermissionCardState = 'pending' | 'answered' | 'allowed' | 'denied' | 'expired';

export type ChatItem =
  | { id: string; kind: 'user'; text: string }
  | { id: string; kind: 'assistant'; text: string; streaming: boolean }
  | { id: string; kind: 'thinking'; text: string }
  | {
      id: string;
      kind: 'tool';
      toolUseId: string;
      toolName: string;
      /** The tool's input in a few words while it runs; its summary once done. */
      summary: string;
      isError: boolean;
      done: boolean;
    }
  | {
      id: string;
      kind: 'permission';
      requestId: string;
      toolName: string;
      message: string;
      /** A short rendering of the tool input. */
      detail: string;
      /** The rule "Allow always" would add and its label; absent from older servers. */
      allowAlways?: { rule: string; label: string };
      /** The request carries a proposal (issue 14), reviewed in a diff editor. */
      review?: ProposalCardInfo;
      state: PermissionCardState;
      /** The answer given, or how the request ended. */
      outcome?: string;
    }
  | { id: string; kind: 'error'; message: string }
  | { id: string; kind: 'notice'; text: string }
  | {
      id: string;
      kind: 'changes';
      /** The turn's number in its session (dave/changes), once known. */
      turn?: number;
      files: ChangedFileRow[];
      /** How the last Undo went, in a few words. */
      note?: string;
    };

/** What a permission card says about its proposal. */
export interface ProposalCardInfo {
  /** The file, relative to the workspace where it lies inside it. */
  file: string;
  /** The proposal can be edited in the diff editor (not truncated, not binary). */
  editable: boolean;
  /** There is something to show in an editor (the texts, or a read-only diff). */
  viewable: boolean;
  /** Why it cannot, or where to look. */
  note: string;
}

/** One file of a turn's "N files changed" row. */
export interface ChangedFileRow {
  /** Absolute, as the server gives it. */
  path: string;
  /** Relative to the workspace where it lies inside it. */
  label: string;
  status: string;
  added: number;
  removed: number;
  binary?: boolean;
  truncated?: boolean;
  /** Undone (dave/revertChanges listed it as reverted). */
  reverted?: boolean;
  /** The server's message when undoing it was a conflict. */
  conflict?: string;
}

export type ChatItemKind = ChatItem['kind'];

export interface SessionSummary {
  id: string;
  title: string;
  busy: boolean;
  /** Known to the server (dave/listSessions) but not yet opened here. */
  resumed?: boolean;
}

export interface ChatViewState {
  sessions: SessionSummary[];
  activeSessionId: string | undefined;
  items: ChatItem[];
  busy: boolean;
  status: string;
}

/** Extension → webview. */
export type ToWebview =
  | { type: 'state'; state: ChatViewState }
  | { type: 'sessions'; sessions: SessionSummary[]; activeSessionId: string | undefined }
  | { type: 'append'; item: ChatItem }
  | { type: 'appendText'; itemId: string; text: string }
  | { type: 'update'; item: ChatItem }
  | { type: 'busy'; busy: boolean }
  | { type: 'status'; text: string }
  | { type: 'focusInput'; text?: string };

export type PermissionAnswer = 'allow' | 'allowAlways' | 'deny';

/** Webview → extension. */
export type FromWebview =
  | { type: 'ready' }
  | { type: 'send'; text: string }
  | { type: 'stop' }
  | { type: 'permission'; requestId: string; decision: PermissionAnswer; reason?: string }
  | { type: 'newSession' }
  | { type: 'switchSession'; sessionId: string }
  | { type: 'deleteSession'; sessionId: string }
  /** Opens (again) the diff editor of a permission request's proposal. */
  | { type: 'openProposal'; requestId: string }
  /** Opens the diffs of a "files changed" row. */
  | { type: 'reviewChanges'; itemId: string }
  /** Undoes a "files changed" row's turn, or one file of it. */
  | { type: 'undoChanges'; itemId: string; path?: string };

const fromWebviewTypes = new Set<FromWebview['type']>([
  'ready',
  'send',
  'stop',
  'permission',
  'newSession',
  'switchSession',
  'deleteSession',
  'openProposal',
  'reviewChanges',
  'undoChanges',
]);

/** Validates a message from the webview: it is untrusted input. */
export function parseFromWebview(raw: unknown): FromWebview | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const m = raw as Record<string, unknown>;
  if (typeof m.type !== 'string' || !fromWebviewTypes.has(m.type as FromWebview['type'])) return undefined;
  switch (m.type) {
    case 'send':
      return typeof m.text === 'string' ? { type: 'send', text: m.text } : undefined;
    case 'permission':
      if (typeof m.requestId !== 'string') return undefined;
      if (m.decision !== 'allow' && m.decision !== 'allowAlways' && m.decision !== 'deny') return undefined;
      return {
        type: 'permission',
        requestId: m.requestId,
        decision: m.decision,
        ...(typeof m.reason === 'string' ? { reason: m.reason } : {}),
      };
    case 'switchSession':
    case 'deleteSession':
      return typeof m.sessionId === 'string' ? { type: m.type, sessionId: m.sessionId } : undefined;
    case 'openProposal':
      return typeof m.requestId === 'string' ? { type: 'openProposal', requestId: m.requestId } : undefined;
    case 'reviewChanges':
      return typeof m.itemId === 'string' ? { type: 'reviewChanges', itemId: m.itemId } : undefined;
    case 'undoChanges':
      if (typeof m.itemId !== 'string') return undefined;
      return { type: 'undoChanges', itemId: m.itemId, ...(typeof m.path === 'string' ? { path: m.path } : {}) };
    default:
      return { type: m.type as 'ready' | 'stop' | 'newSession' };
  }
}
