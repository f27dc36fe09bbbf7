/**
 * The `$/progress` values of a query (docs/protocol.md, "Progress events"),
 * with what a `permissionRequest` carries: the allow-always offer, the
 * proposal of a file tool, the model's questions.
 */

import type { OpenString } from './types';

/** What "allow always" would add (issue 12): the rule and a few words for it. */
export interface AllowAlwaysOffer {
  /** e.g. `Bash(rm -f one.txt)`, `WebFetch(domain:example.com)`, `Edit(/abs/cwd/**)`. */
  rule: string;
  /** e.g. "this exact command", "fetches from example.com". */
  label: string;
}

/** One of AskUserQuestion's questions (`permissionRequest.questions`, issue 16). */
export interface Question {
  question: string;
  header?: string;
  multiSelect?: boolean;
  options?: Array<{ label: string; description?: string }>;
}

/**
 * What a file tool would write (`permissionRequest.proposal`, issue 14).
 * `original` and `proposed` are absent when `truncated` or `binary`.
 */
export interface Proposal {
  path: string;
  exists: boolean;
  original?: string;
  proposed?: string;
  /** Unified diff, labels relative to the session's cwd; "" when too big or binary. */
  diff: string;
  truncated?: boolean;
  binary?: boolean;
}

interface ReportBase {
  kind: 'report';
  /** A short line for a status bar; may appear on any report. */
  message?: string;
}

export interface BeginProgress {
  kind: 'begin';
  title?: string;
  cancellable?: boolean;
  message?: string;
}

export interface EndProgress {
  kind: 'end';
  message?: string;
}

export interface TokenReport extends ReportBase {
  type: 'token';
  text: string;
}

export interface ThinkingReport extends ReportBase {
  type: 'thinking';
  text: string;
}

/** `message` is the server's description of the use, e.g. `Bash rm -f one.txt`. */
export interface ToolUseReport extends ReportBase {
  type: 'toolUse';
  toolUseId: string;
  toolName: string;
  input: Record<string, unknown>;
  /** Additive (issue 16): a subagent's tool use, under this Agent tool use. */
  parentToolUseId?: string;
}

export interface PermissionRequestReport extends ReportBase {
  type: 'permissionRequest';
  requestId: string;
  sessionId: string;
  toolUseId: string;
  toolName: string;
  input: Record<string, unknown>;
  message?: string;
  /** Additive (issue 12); older servers omit it. */
  allowAlways?: AllowAlwaysOffer;
  /** Additive (issue 14): a Write, Edit or MultiEdit's file before and after. */
  proposal?: Proposal;
  /** Additive (issue 16): AskUserQuestion's questions. */
  questions?: Question[];
  /** Additive (issue 16): ExitPlanMode's plan, as markdown. */
  plan?: string;
  /** Additive (issue 16): the Agent tool use this subagent's request belongs to. */
  parentToolUseId?: string;
}

export interface PermissionResolvedReport extends ReportBase {
  type: 'permissionResolved';
  requestId: string;
  decision: 'allow' | 'deny';
  by: OpenString<'user' | 'rule' | 'mode' | 'cancel'>;
  /** The rule that allowed it (by "rule") or that the user's allowAlways added (by "user"). */
  rule?: string;
  /** The user accepted an edited version of the proposal (issue 14). */
  edited?: boolean;
}

export interface ToolResultReport extends ReportBase {
  type: 'toolResult';
  toolUseId: string;
  toolName: string;
  summary: string;
  isError: boolean;
  parentToolUseId?: string;
}

export interface StatusReport extends ReportBase {
  type: 'status';
  state: OpenString<'connecting' | 'working' | 'compacting' | 'retrying'>;
  /** With `retrying` (issue 18): which attempt, of how many, and the wait before it. */
  attempt?: number;
  maxAttempts?: number;
  retryInMs?: number;
}

export interface ErrorReport extends ReportBase {
  type: 'error';
  message: string;
}

export type Report =
  | TokenReport
  | ThinkingReport
  | ToolUseReport
  | PermissionRequestReport
  | PermissionResolvedReport
  | ToolResultReport
  | StatusReport
  | ErrorReport;

export type ProgressValue = BeginProgress | Report | EndProgress;
