/**
 * The editor's context and tools (docs/protocol.md, "Editor context and editor
 * tools"): a query's `context`, and the `dave/editor/*` requests in LSP's shapes.
 */

/** The editor tools a client can answer (issue 15), as listed in `capabilities.experimental.dave.editorTools`. */
export const EDITOR_TOOLS = ['diagnostics', 'definition', 'references', 'symbols', 'hover', 'openEditors', 'selection'] as const;
export type EditorToolName = (typeof EDITOR_TOOLS)[number];

/** The server-to-client request of an editor tool: `dave/editor/<name>`. */
export function editorMethod(name: EditorToolName): string {
  return `dave/editor/${name}`;
}

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
