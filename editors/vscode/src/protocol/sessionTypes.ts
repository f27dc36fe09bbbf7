/**
 * The sessions and what belongs to them (docs/protocol.md, "Session
 * lifecycle", "Conversation history", "Allow-always rules", "Folder trust"):
 * deleting and listing sessions, slash commands, rules, history and trust;
 * rewinding and forking a session ("Rewind and fork", issue 27).
 */

import type { OpenString } from './types';

export interface DeleteSessionParams {
  sessionId: string;
}

export interface DeleteSessionResult {
  deleted: boolean;
}

export interface ServerSessionInfo {
  sessionId: string;
  state?: OpenString<'idle' | 'working' | 'needsInput' | 'evicted'>;
  cwd?: string;
  model?: string;
  permissionMode?: string;
  createdAt?: string | number;
  lastActiveAt?: string | number;
  turns?: number;
  title?: string;
  backendSessionId?: string;
  /** Additive (issue 16): the session's running cost. */
  costUsd?: number;
  /** Additive (issue 27): the session was forked (`dave/fork`) from that session's turn. */
  forkedFrom?: { sessionId: string; turn: number };
}

export interface ListSessionsResult {
  sessions: ServerSessionInfo[];
}

export interface SlashCommand {
  name: string;
  description?: string;
  argumentHint?: string;
}

export interface ListCommandsResult {
  commands: SlashCommand[];
}

export interface PermissionRule {
  rule: string;
  label: string;
  createdAt: string | number;
}

export interface ListRulesParams {
  sessionId: string;
}

export interface ListRulesResult {
  rules: PermissionRule[];
}

export interface RemoveRuleParams {
  sessionId: string;
  rule: string;
}

export interface RemoveRuleResult {
  removed: boolean;
}

/** One `dave/history` entry (docs/protocol.md, "Conversation history"). */
export interface HistoryToolUse {
  toolUseId?: string;
  toolName: string;
  message?: string;
  summary?: string;
  isError?: boolean;
}

export type HistoryEntry =
  | { role: 'user'; text: string; editorContext?: boolean; images?: number }
  | { role: 'assistant'; text?: string; thinking?: string; toolUses?: HistoryToolUse[] };

/** `dave/history`: the conversation from the backend's own record, or why there is none. */
export interface HistoryResult {
  sessionId: string;
  backend: string;
  available: boolean;
  reason?: string;
  entries: HistoryEntry[];
}

/** `dave/trustFolder` -> the normalized absolute folder and whether it is trusted now (issue 24). */
export interface TrustFolderResult {
  path: string;
  trusted: boolean;
}

/** `dave/folderTrust`: whether a folder is trusted, and what its Claude Code settings would run if it were. */
export interface FolderTrustResult {
  path: string;
  trusted: boolean;
  runsCode: boolean;
  wouldRun: string[];
}

/** `dave/rewind`: back to the moment before turn `turn` began; `files` (default true) restores the files too. */
export interface RewindParams {
  sessionId: string;
  turn: number;
  files?: boolean;
}

export interface RewindResult {
  /** The turn the next query is. */
  turn: number;
  /** Files restored as they were before `turn`. */
  restored: string[];
  /** Files changed since the rewound turns left them: kept, not restored. */
  conflicts: Array<{ path: string; message: string }>;
}

/** `dave/fork`: a new session holding this one's turns 1..`turn` (default: all). */
export interface ForkParams {
  sessionId: string;
  turn?: number;
}

export interface ForkResult {
  sessionId: string;
}
