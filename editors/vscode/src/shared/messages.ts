/**
 * The typed messages between the chat webview and the extension, and the chat
 * items both sides render. The extension owns the state; the webview renders
 * it and reports what the user did.
 */

import type { Question } from '../protocol/progressTypes';
import type { SlashCommand } from '../protocol/sessionTypes';
import type { ImageAttachment, PermissionMode } from '../protocol/types';

export type { Question } from '../protocol/progressTypes';
export type { SlashCommand } from '../protocol/sessionTypes';
export type { ImageAttachment, PermissionMode } from '../protocol/types';

export type PermissionCardState = 'pending' | 'answered' | 'allowed' | 'denied' | 'expired';

export type ChatItem =
  | {
      id: string;
      kind: 'user';
      text: string;
      /** Images attached (issue 16). */
      images?: number;
      /** The context chips that went with it, as labels ("greet.py:1-2", issue 18). */
      context?: string[];
    }
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
      /** A subagent's tool use: the Agent tool use it runs under (issue 16). */
      parentToolUseId?: string;
      /** The file a file tool works on, as the model gave it: the row opens it (issue 18). */
      filePath?: string;
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
      /** The model asks the user (AskUserQuestion, issue 16): the card is a question card. */
      questions?: Question[];
      /** The model asks to leave plan mode (ExitPlanMode, issue 16): the plan, as markdown. */
      plan?: string;
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
    }
  | RewindItem;

/**
 * What "Rewind to here" did (issue 27): the session went back to before the
 * turn of a message of yours; that message and everything after it left the
 * transcript, and the files the rewound turns changed were restored (unless
 * only the conversation was rewound) or, changed since, kept as conflicts.
 */
export interface RewindItem {
  id: string;
  kind: 'rewind';
  /** The turn the session went back to before: the next prompt is this turn again. */
  turn: number;
  /** The rewound message, as you typed it. */
  prompt: string;
  /** The files were restored too (false: the conversation only). */
  files: boolean;
  /** The files restored, and those kept because they changed since (with the server's message). */
  rows: RewoundFileRow[];
}

export interface RewoundFileRow {
  /** Absolute, as the server gives it. */
  path: string;
  /** Relative to the workspace where it lies inside it. */
  label: string;
  /** Set when the file was not restored: why (it changed since). */
  conflict?: string;
}

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

/** A prompt sent while a turn runs: it waits in the view, removable, and runs in order. */
export interface QueuedPrompt {
  id: string;
  text: string;
  images: number;
  /** Its context chips' labels. */
  context?: string[];
}

/**
 * A selection put into the message box by "Ask Dave About Selection" (issue 18):
 * a removable chip that goes with the next message as its `context`.
 */
export interface ContextChip {
  id: string;
  /** "greet.py:1-2": the file relative to the workspace, and the lines (1-based, inclusive). */
  label: string;
  /** The file's absolute path. */
  path: string;
  languageId: string;
  /** 1-based, inclusive; a selection that ends at column 1 ends on the line before. */
  startLine: number;
  endLine: number;
  /** The LSP range of the selection (0-based). */
  selection: { start: { line: number; character: number }; end: { line: number; character: number } };
  text: string;
}

/** A model request the backend retries (a `retrying` status): the status line counts down to it. */
export interface RetryInfo {
  attempt: number;
  maxAttempts?: number;
  retryInMs: number;
  /** Why: "API Error 500". */
  reason: string;
}

/** "Retrying in 8 s (attempt 2 of 10): API Error 500"; `leftMs` counts down to the retry. */
export function retryText(retry: RetryInfo, leftMs: number): string {
  const of = retry.maxAttempts !== undefined ? ` of ${retry.maxAttempts}` : '';
  const when = leftMs > 0 ? `in ${Math.ceil(leftMs / 1000)} s` : 'now';
  return `Retrying ${when} (attempt ${retry.attempt}${of}): ${retry.reason}`;
}

/** What the first open says: the backend and model that answer, and how to start. */
export interface Welcome {
  backend: string;
  model: string;
}

/** The session's model ("" for the backend's default) and permission mode, as the pickers show them. */
export interface SessionSettings {
  model: string;
  permissionMode: PermissionMode;
}

/** The context meter and the session's cost (issue 16). */
export interface Meter {
  contextTokens?: number;
  contextWindow?: number;
  costUsd?: number;
}

export interface ChatViewState {
  sessions: SessionSummary[];
  activeSessionId: string | undefined;
  items: ChatItem[];
  busy: boolean;
  status: string;
  queued?: QueuedPrompt[];
  settings?: SessionSettings;
  meter?: Meter;
  /** Shown while the session has no items. */
  welcome?: Welcome;
  /** The context chips in the message box. */
  chips?: ContextChip[];
}

/** Extension → webview. */
export type ToWebview =
  | { type: 'state'; state: ChatViewState }
  | { type: 'sessions'; sessions: SessionSummary[]; activeSessionId: string | undefined }
  | { type: 'append'; item: ChatItem }
  | { type: 'appendText'; itemId: string; text: string }
  | { type: 'update'; item: ChatItem }
  | { type: 'busy'; busy: boolean }
  | { type: 'status'; text: string; retry?: RetryInfo }
  | { type: 'focusInput'; text?: string }
  /** The message box's context chips (Ask Dave About Selection). */
  | { type: 'chips'; chips: ContextChip[] }
  | { type: 'queue'; queued: QueuedPrompt[] }
  | { type: 'settings'; settings: SessionSettings }
  | { type: 'meter'; meter: Meter | undefined }
  /** The slash commands (`dave/listCommands`), for `/` completion. */
  | { type: 'commands'; commands: SlashCommand[] }
  /** Workspace files matching an `@` completion's query. */
  | { type: 'files'; query: string; paths: string[] };

export const PERMISSION_MODES: readonly PermissionMode[] = ['default', 'acceptEdits', 'plan', 'bypassPermissions'];
const IMAGE_TYPES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp']);

export type PermissionAnswer = 'allow' | 'allowAlways' | 'deny';

/** Webview → extension. */
export type FromWebview =
  | { type: 'ready' }
  /** The message box's text; its context chips are the extension's (they go with it). */
  | { type: 'send'; text: string; attachments?: ImageAttachment[] }
  /** The × of a context chip. */
  | { type: 'removeContext'; id: string }
  | { type: 'stop' }
  | {
      type: 'permission';
      requestId: string;
      decision: PermissionAnswer;
      reason?: string;
      /** A question card's answers, by question text. */
      answers?: Record<string, string | string[]>;
      /** A plan card's "Approve and accept edits". */
      permissionMode?: PermissionMode;
    }
  /** Removes a queued prompt before it runs. */
  | { type: 'unqueue'; id: string }
  | { type: 'setModel'; model: string }
  | { type: 'setPermissionMode'; mode: PermissionMode }
  | { type: 'listCommands' }
  | { type: 'findFiles'; query: string }
  | { type: 'newSession' }
  | { type: 'switchSession'; sessionId: string }
  | { type: 'deleteSession'; sessionId: string }
  /** Opens (again) the diff editor of a permission request's proposal. */
  | { type: 'openProposal'; requestId: string }
  /** Opens the diffs of a "files changed" row. */
  | { type: 'reviewChanges'; itemId: string }
  /** Undoes a "files changed" row's turn, or one file of it. */
  | { type: 'undoChanges'; itemId: string; path?: string }
  /** "Rewind to here" on a message of yours: files and conversation, or (files: false) the conversation only. */
  | { type: 'rewind'; itemId: string; files: boolean }
  /** "Fork from here" on a message of yours: a new session holding the turns up to it. */
  | { type: 'fork'; itemId: string }
  /** A rewind row's Review of one file: the rewound turns' change to it. */
  | { type: 'reviewRewind'; itemId: string; path: string }
  /** A code block's Copy and Insert at cursor (issue 18). */
  | { type: 'copyCode'; code: string }
  | { type: 'insertCode'; code: string }
  /** A code block's Apply: a reviewed edit of a file; `info` is its fence's info string. */
  | { type: 'applyCode'; code: string; info?: string }
  /** A file tool's row: opens its file. */
  | { type: 'openFile'; path: string };

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
  'rewind',
  'fork',
  'reviewRewind',
  'unqueue',
  'setModel',
  'setPermissionMode',
  'listCommands',
  'findFiles',
  'copyCode',
  'insertCode',
  'applyCode',
  'openFile',
  'removeContext',
]);

function attachmentsOf(raw: unknown): ImageAttachment[] | undefined {
  if (!Array.isArray(raw)) return undefined;
  const out = (raw as unknown[]).filter(
    (a): a is ImageAttachment =>
      typeof a === 'object' &&
      a !== null &&
      (a as ImageAttachment).type === 'image' &&
      IMAGE_TYPES.has((a as ImageAttachment).mediaType) &&
      typeof (a as ImageAttachment).data === 'string' &&
      (a as ImageAttachment).data !== '',
  );
  return out.length > 0 ? out.map((a) => ({ type: 'image', mediaType: a.mediaType, data: a.data })) : undefined;
}

/** At most what a code block may carry to the clipboard or the editor. */
const MAX_CODE = 1_000_000;
/** At most what a fence's info string may carry (it names a language and a file). */
const MAX_INFO = 1_000;

function answersOf(raw: unknown): Record<string, string | string[]> | undefined {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return undefined;
  const out: Record<string, string | string[]> = {};
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    if (typeof value === 'string') out[key] = value;
    else if (Array.isArray(value) && value.every((v) => typeof v === 'string')) out[key] = [...(value)];
  }
  return out;
}

function isMode(raw: unknown): raw is PermissionMode {
  return typeof raw === 'string' && (PERMISSION_MODES as readonly string[]).includes(raw);
}

/** Validates a message from the webview: it is untrusted input. */
export function parseFromWebview(raw: unknown): FromWebview | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const m = raw as Record<string, unknown>;
  if (typeof m.type !== 'string' || !fromWebviewTypes.has(m.type as FromWebview['type'])) return undefined;
  switch (m.type) {
    case 'send': {
      if (typeof m.text !== 'string') return undefined;
      const attachments = attachmentsOf(m.attachments);
      return { type: 'send', text: m.text, ...(attachments !== undefined ? { attachments } : {}) };
    }
    case 'copyCode':
    case 'insertCode':
      return typeof m.code === 'string' && m.code.length <= MAX_CODE ? { type: m.type, code: m.code } : undefined;
    case 'applyCode': {
      if (typeof m.code !== 'string' || m.code.length > MAX_CODE) return undefined;
      const info = typeof m.info === 'string' && m.info.trim() !== '' ? m.info.trim().slice(0, MAX_INFO) : undefined;
      return { type: 'applyCode', code: m.code, ...(info !== undefined ? { info } : {}) };
    }
    case 'removeContext':
      return typeof m.id === 'string' ? { type: 'removeContext', id: m.id } : undefined;
    case 'openFile':
      return typeof m.path === 'string' && m.path !== '' ? { type: 'openFile', path: m.path } : undefined;
    case 'permission': {
      if (typeof m.requestId !== 'string') return undefined;
      if (m.decision !== 'allow' && m.decision !== 'allowAlways' && m.decision !== 'deny') return undefined;
      const answers = answersOf(m.answers);
      return {
        type: 'permission',
        requestId: m.requestId,
        decision: m.decision,
        ...(typeof m.reason === 'string' ? { reason: m.reason } : {}),
        ...(answers !== undefined ? { answers } : {}),
        ...(isMode(m.permissionMode) ? { permissionMode: m.permissionMode } : {}),
      };
    }
    case 'unqueue':
      return typeof m.id === 'string' ? { type: 'unqueue', id: m.id } : undefined;
    case 'setModel':
      return typeof m.model === 'string' ? { type: 'setModel', model: m.model.trim() } : undefined;
    case 'setPermissionMode':
      return isMode(m.mode) ? { type: 'setPermissionMode', mode: m.mode } : undefined;
    case 'findFiles':
      return typeof m.query === 'string' ? { type: 'findFiles', query: m.query.slice(0, 200) } : undefined;
    case 'switchSession':
    case 'deleteSession':
      return typeof m.sessionId === 'string' ? { type: m.type, sessionId: m.sessionId } : undefined;
    case 'openProposal':
      return typeof m.requestId === 'string' ? { type: 'openProposal', requestId: m.requestId } : undefined;
    case 'reviewChanges':
      return typeof m.itemId === 'string' ? { type: 'reviewChanges', itemId: m.itemId } : undefined;
    case 'rewind':
      return typeof m.itemId === 'string' ? { type: 'rewind', itemId: m.itemId, files: m.files !== false } : undefined;
    case 'fork':
      return typeof m.itemId === 'string' ? { type: 'fork', itemId: m.itemId } : undefined;
    case 'reviewRewind':
      return typeof m.itemId === 'string' && typeof m.path === 'string' ? { type: 'reviewRewind', itemId: m.itemId, path: m.path } : undefined;
    case 'undoChanges':
      if (typeof m.itemId !== 'string') return undefined;
      return { type: 'undoChanges', itemId: m.itemId, ...(typeof m.path === 'string' ? { path: m.path } : {}) };
    default:
      return { type: m.type as 'ready' | 'stop' | 'newSession' | 'listCommands' };
  }
}
