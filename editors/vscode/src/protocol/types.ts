/**
 * The dave-lsp wire protocol, version 1, as TypeScript types: the method
 * names and error codes, `initialize`, `dave/query` and `dave/permission`.
 *
 * This file and its siblings mirror docs/protocol.md and nothing else, one
 * area each: editorTypes.ts the editor's context and tools, progressTypes.ts
 * the `$/progress` reports, changeTypes.ts reviewing changes, sessionTypes.ts
 * the sessions, commands, rules, history and folder trust. No behaviour lives
 * here.
 */

import type { ChangeSummary } from './changeTypes';
import type { QueryContext } from './editorTypes';

export const PROTOCOL_VERSION = 1;

export const Methods = {
  query: 'dave/query',
  permission: 'dave/permission',
  deleteSession: 'dave/deleteSession',
  /** Additive (issue 4); used only when the server advertises it. */
  listSessions: 'dave/listSessions',
  /** Additive (issue 12); used only when the server advertises them. */
  listRules: 'dave/listRules',
  removeRule: 'dave/removeRule',
  /** Additive (issue 14, "Reviewing changes"); used only when the server advertises them. */
  changes: 'dave/changes',
  revertChanges: 'dave/revertChanges',
  /** Additive (issue 16, "The turn's state"); used only when the server advertises them. */
  newSession: 'dave/newSession',
  setModel: 'dave/setModel',
  setPermissionMode: 'dave/setPermissionMode',
  listCommands: 'dave/listCommands',
  /** Additive (issue 17, "Conversation history"); used only when the server advertises it. */
  history: 'dave/history',
  /** Additive (issue 24, "Folder trust"); used only when the server advertises them. */
  trustFolder: 'dave/trustFolder',
  folderTrust: 'dave/folderTrust',
  /** Additive (issue 27, "Rewind and fork"); used only when the server advertises them. */
  rewind: 'dave/rewind',
  fork: 'dave/fork',
} as const;

export const ErrorCodes = {
  InvalidParams: -32602,
  MethodNotFound: -32601,
  RequestCancelled: -32800,
  RequestFailed: -32803,
} as const;

/** The values this version knows, and any other string a newer server may send (kept open on purpose). */
export type OpenString<Known extends string> = Known | (string & Record<never, never>);

export type Backend = 'claude' | 'openai';
export type PermissionMode = 'default' | 'acceptEdits' | 'plan' | 'bypassPermissions';

export interface InitializationOptions {
  backend?: Backend;
  model?: string;
  permissionMode?: PermissionMode;
  cwd?: string;
  claude?: { cliPath?: string };
  openai?: { baseUrl?: string };
  env?: Record<string, string>;
  /** Spare CLI clients kept connected for new sessions (default 1). */
  prewarm?: number;
  /** Folders whose Claude Code project settings (hooks, MCP servers, env) load for this server run (issue 24). */
  trustedFolders?: string[];
}

/** `capabilities.experimental.dave` in the `initialize` result. */
export interface DaveCapabilities {
  version: number;
  backends?: string[];
  methods?: string[];
}

export interface TranscriptMessage {
  role: 'user' | 'assistant';
  content: string;
}

export interface ImageAttachment {
  type: 'image';
  mediaType: string;
  /** base64 */
  data: string;
}

export interface QueryParams {
  sessionId: string;
  prompt: string;
  /** Additive (issue 16). */
  attachments?: ImageAttachment[];
  /** Additive (issue 15). */
  context?: QueryContext;
  messages?: TranscriptMessage[];
  workDoneToken?: string | number;
  cwd?: string;
  model?: string;
}

export interface Usage {
  inputTokens: number;
  outputTokens: number;
  /** Additive (issue 16): the conversation's size as of this turn. */
  contextTokens?: number;
  /** Additive (issue 16): the model's window, when the backend knows it. */
  contextWindow?: number;
}

export interface ToolResultSummary {
  toolUseId: string;
  toolName: string;
  summary: string;
  isError: boolean;
}

export interface QueryResult {
  sessionId: string;
  text: string;
  stopReason: string;
  toolResults: ToolResultSummary[];
  /** Additive (issue 14): the files this turn changed; absent from older servers. */
  changes?: ChangeSummary[];
  usage?: Usage;
  costUsd?: number;
  durationMs?: number;
  backendSessionId?: string;
}

/** `data` of a RequestFailed (-32803) error. */
export interface QueryFailureData {
  sessionId?: string;
  partialText?: string;
  toolResults?: ToolResultSummary[];
  changes?: ChangeSummary[];
  /** Additive (issue 18): the backend's environment variable that fixes the failure (ANTHROPIC_API_KEY). */
  needsEnv?: string;
}

export type PermissionDecision = 'allow' | 'allowAlways' | 'deny';

export interface PermissionParams {
  requestId: string;
  decision: PermissionDecision;
  reason?: string;
  updatedInput?: Record<string, unknown>;
  /** The whole file as the user accepted it after editing the proposal (issue 14); only with an allow. */
  editedContent?: string;
  /** AskUserQuestion's answers by question text: a label, labels, or the user's words (issue 16). */
  answers?: Record<string, string | string[]>;
  /** The session's mode after an approved plan (issue 16). */
  permissionMode?: PermissionMode;
}
