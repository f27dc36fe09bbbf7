/**
 * The dave-lsp wire protocol, version 1, as TypeScript types.
 *
 * This file mirrors docs/protocol.md and nothing else: method names, params,
 * results, `$/progress` values and error codes. No behaviour lives here.
 */

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
} as const;

/** The editor tools a client can answer (issue 15), as listed in `capabilities.experimental.dave.editorTools`. */
export const EDITOR_TOOLS = ['diagnostics', 'definition', 'references', 'symbols', 'hover', 'openEditors', 'selection'] as const;
export type EditorToolName = (typeof EDITOR_TOOLS)[number];

/** The server-to-client request of an editor tool: `dave/editor/<name>`. */
export function editorMethod(name: EditorToolName): string {
  return `dave/editor/${name}`;
}

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

// ---- the editor's context and tools (issue 15), LSP shapes ---------------

export interface LspPosition {
  line: number;
  character: number;
}

export interface LspRange {
  start: LspPosition;
  end: LspPosition;
}

export interface LspLocation {
  uri: string;
  range: LspRange;
}

export interface LspLocationLink {
  originSelectionRange?: LspRange;
  targetUri: string;
  targetRange: LspRange;
  targetSelectionRange: LspRange;
}

export interface LspDiagnostic {
  range: LspRange;
  /** 1 error, 2 warning, 3 information, 4 hint. */
  severity?: 1 | 2 | 3 | 4;
  code?: string | number;
  source?: string;
  message: string;
}

export interface LspHover {
  contents: { kind: 'markdown' | 'plaintext'; value: string };
  range?: LspRange;
}

export interface LspSymbolInformation {
  name: string;
  /** LSP's SymbolKind: 1 File … 26 TypeParameter. */
  kind: number;
  containerName?: string;
  location: LspLocation;
}

export interface OpenEditorInfo {
  uri: string;
  languageId: string;
  isActive: boolean;
  isDirty: boolean;
}

export interface SelectionInfo {
  uri: string;
  range: LspRange;
  text: string;
}

/** `context.activeFile` of a query. */
export interface ActiveFileContext {
  path: string;
  languageId?: string;
  selection?: LspRange;
  selectedText?: string;
}

/** `context.mentions[]` of a query: lines 1-based and inclusive, both optional. */
export interface Mention {
  path: string;
  startLine?: number;
  endLine?: number;
}

export interface QueryContext {
  activeFile?: ActiveFileContext;
  mentions?: Mention[];
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

/** One file a turn's file tools changed (a query result's `changes`, issue 14). */
export interface ChangeSummary {
  path: string;
  status: OpenString<'created' | 'modified' | 'deleted'>;
  added: number;
  removed: number;
  /** A side is not text: listed with 0/0 counts. */
  binary?: boolean;
  /** A side was over 1 MiB and kept only as a hash. */
  truncated?: boolean;
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

/** One of AskUserQuestion's questions (`permissionRequest.questions`, issue 16). */
export interface Question {
  question: string;
  header?: string;
  multiSelect?: boolean;
  options?: Array<{ label: string; description?: string }>;
}

export interface SlashCommand {
  name: string;
  description?: string;
  argumentHint?: string;
}

export interface ListCommandsResult {
  commands: SlashCommand[];
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

/** `dave/changes` params: `turn` defaults to the last turn that changed files. */
export interface ChangesParams {
  sessionId: string;
  turn?: number;
}

export interface ChangedFile extends ChangeSummary {
  /** The texts before and after the turn; null for a missing, binary or large file. */
  before: string | null;
  after: string | null;
  diff: string;
}

export interface ChangesResult {
  sessionId: string;
  /** null when no turn changed files. */
  turn: number | null;
  files: ChangedFile[];
}

export interface HunkRef {
  path: string;
  /** Counts from 0 over that file's `@@` hunks in `dave/changes`' diff. */
  index: number;
}

export interface RevertChangesParams {
  sessionId: string;
  turn?: number;
  paths?: string[];
  hunks?: HunkRef[];
}

export interface RevertConflict {
  path: string;
  message: string;
}

export interface RevertChangesResult {
  reverted: string[];
  conflicts: RevertConflict[];
}

/** What "allow always" would add (issue 12): the rule and a few words for it. */
export interface AllowAlwaysOffer {
  /** e.g. `Bash(rm -f one.txt)`, `WebFetch(domain:example.com)`, `Edit(/abs/cwd/**)`. */
  rule: string;
  /** e.g. "this exact command", "fetches from example.com". */
  label: string;
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
}

export interface ListSessionsResult {
  sessions: ServerSessionInfo[];
}

// ---- `$/progress` values -------------------------------------------------

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

export interface HistoryResult {
  sessionId: string;
  backend: string;
  available: boolean;
  reason?: string;
  entries: HistoryEntry[];
}
