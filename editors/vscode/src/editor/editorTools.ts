/**
 * The editor's tools (issue 15): the server asks `dave/editor/<name>` and this
 * answers from VS Code's language features, in LSP's shapes (0-based positions,
 * severities 1-4, SymbolKind from 1). It never imports `vscode` at run time: it
 * takes the part of the API it uses (`EditorApi`, which the `vscode` module
 * itself satisfies), so tests answer with a stub. The conversions are pure
 * functions below.
 */

import {
  EDITOR_TOOLS,
  editorMethod,
  type ActiveFileContext,
  type EditorToolName,
  type LspDiagnostic,
  type LspHover,
  type LspLocation,
  type LspLocationLink,
  type LspRange,
  type LspSymbolInformation,
  type OpenEditorInfo,
  type SelectionInfo,
} from '../protocol/editorTypes';

// ---- the part of the vscode API used here (structural) -------------------

export interface UriLike {
  readonly scheme: string;
  readonly fsPath: string;
  toString(): string;
}

export interface PositionLike {
  readonly line: number;
  readonly character: number;
}

export interface RangeLike {
  readonly start: PositionLike;
  readonly end: PositionLike;
}

export interface DiagnosticLike {
  readonly range: RangeLike;
  /** vscode.DiagnosticSeverity: 0 Error, 1 Warning, 2 Information, 3 Hint. */
  readonly severity: number;
  readonly message: string;
  readonly source?: string;
  readonly code?: string | number | { value: string | number };
}

export interface LocationLike {
  readonly uri: UriLike;
  readonly range: RangeLike;
}

export interface LocationLinkLike {
  readonly originSelectionRange?: RangeLike;
  readonly targetUri: UriLike;
  readonly targetRange: RangeLike;
  readonly targetSelectionRange?: RangeLike;
}

/** A MarkdownString ({value}), or a MarkedString (a string, or {language, value}). */
export type HoverPartLike = string | { readonly value: string; readonly language?: string };

export interface HoverLike {
  readonly contents: readonly HoverPartLike[];
  readonly range?: RangeLike;
}

export interface SymbolInformationLike {
  readonly name: string;
  /** vscode.SymbolKind: 0 File … 25 TypeParameter (LSP's minus one). */
  readonly kind: number;
  readonly containerName?: string;
  readonly location: LocationLike;
}

export interface TextDocumentLike {
  readonly uri: UriLike;
  readonly languageId: string;
  readonly isDirty: boolean;
  getText(range?: RangeLike): string;
}

export interface TextEditorLike {
  readonly document: TextDocumentLike;
  readonly selection: RangeLike & { readonly isEmpty: boolean };
}

export interface TabLike {
  readonly input: unknown;
  readonly isActive: boolean;
  readonly isDirty: boolean;
}

export interface EditorApi {
  readonly languages: {
    getDiagnostics(resource?: UriLike): DiagnosticLike[] | Array<[UriLike, DiagnosticLike[]]>;
  };
  readonly commands: {
    executeCommand<T>(command: string, ...rest: unknown[]): Thenable<T>;
  };
  readonly window: {
    readonly activeTextEditor: TextEditorLike | undefined;
    readonly visibleTextEditors: readonly TextEditorLike[];
    readonly tabGroups: { readonly all: ReadonlyArray<{ readonly isActive: boolean; readonly tabs: readonly TabLike[] }> };
  };
  readonly workspace: { readonly textDocuments: readonly TextDocumentLike[] };
  readonly Uri: { parse(value: string): UriLike };
  readonly Position: new (line: number, character: number) => PositionLike;
}

// ---- pure conversions ------------------------------------------------------

export function lspRange(range: RangeLike): LspRange {
  return {
    start: { line: range.start.line, character: range.start.character },
    end: { line: range.end.line, character: range.end.character },
  };
}

/** vscode's DiagnosticSeverity (0-3) as LSP's (1-4); anything unknown is an error. */
export function lspSeverity(severity: number): 1 | 2 | 3 | 4 {
  switch (severity) {
    case 1:
      return 2;
    case 2:
      return 3;
    case 3:
      return 4;
    default:
      return 1;
  }
}

export function lspDiagnostic(d: DiagnosticLike): LspDiagnostic {
  const code = typeof d.code === 'object' && d.code !== null ? d.code.value : d.code;
  return {
    range: lspRange(d.range),
    severity: lspSeverity(d.severity),
    message: d.message,
    ...(d.source !== undefined && d.source !== '' ? { source: d.source } : {}),
    ...(code !== undefined && code !== '' ? { code } : {}),
  };
}

function isLink(x: LocationLike | LocationLinkLike): x is LocationLinkLike {
  return (x as LocationLinkLike).targetUri !== undefined;
}

export function lspLocations(found: ReadonlyArray<LocationLike | LocationLinkLike> | undefined | null): Array<LspLocation | LspLocationLink> {
  return (found ?? []).filter((x) => x !== undefined && x !== null).map((x) =>
    isLink(x)
      ? {
          targetUri: x.targetUri.toString(),
          targetRange: lspRange(x.targetRange),
          targetSelectionRange: lspRange(x.targetSelectionRange ?? x.targetRange),
          ...(x.originSelectionRange !== undefined ? { originSelectionRange: lspRange(x.originSelectionRange) } : {}),
        }
      : { uri: x.uri.toString(), range: lspRange(x.range) },
  );
}

function hoverPart(part: HoverPartLike): string {
  if (typeof part === 'string') return part;
  if (part.language !== undefined) return `\`\`\`${part.language}\n${part.value}\n\`\`\``;
  return part.value;
}

/** Every provider's hover as one markdown Hover, or null when none says anything. */
export function lspHover(hovers: readonly HoverLike[] | undefined | null): LspHover | null {
  const parts = (hovers ?? []).flatMap((h) => h.contents.map(hoverPart)).filter((t) => t.trim() !== '');
  if (parts.length === 0) return null;
  const range = hovers?.find((h) => h.range !== undefined)?.range;
  return { contents: { kind: 'markdown', value: parts.join('\n\n') }, ...(range !== undefined ? { range: lspRange(range) } : {}) };
}

export function lspSymbol(s: SymbolInformationLike): LspSymbolInformation {
  return {
    name: s.name,
    kind: s.kind + 1,
    ...(s.containerName !== undefined && s.containerName !== '' ? { containerName: s.containerName } : {}),
    location: { uri: s.location.uri.toString(), range: lspRange(s.location.range) },
  };
}

/** Editors of files and unsaved buffers; not diff sides, output or our own proposal documents. */
function isUserDocument(uri: UriLike): boolean {
  return uri.scheme === 'file' || uri.scheme === 'untitled';
}

/** The tab's document, if it shows one (a text tab, or the right side of a diff). */
function tabUri(input: unknown): UriLike | undefined {
  if (typeof input !== 'object' || input === null) return undefined;
  const i = input as { uri?: UriLike; modified?: UriLike };
  return i.uri ?? i.modified;
}

/** `context.activeFile` of a prompt: the active editor's file, language, selection and its text. */
export function activeFileContext(editor: TextEditorLike | undefined): ActiveFileContext | undefined {
  if (editor === undefined || editor.document.uri.scheme !== 'file') return undefined;
  const document = editor.document;
  const selection = editor.selection;
  const text = selection.isEmpty ? '' : document.getText(selection);
  return {
    path: document.uri.fsPath,
    languageId: document.languageId,
    selection: lspRange(selection),
    ...(text !== '' ? { selectedText: text } : {}),
  };
}

// ---- the requests ----------------------------------------------------------

interface TextDocumentPositionParams {
  textDocument?: { uri?: unknown };
  position?: { line?: unknown; character?: unknown };
}

export class EditorTools {
  /** Every tool listed in `capabilities.experimental.dave.editorTools`. */
  static readonly names: readonly EditorToolName[] = EDITOR_TOOLS;

  constructor(private readonly api: EditorApi) {}

  /** Registers a handler per tool on a JSON-RPC connection (or a LanguageClient). */
  register(onRequest: (method: string, handler: (params: unknown) => Promise<unknown>) => { dispose(): void }): Array<{ dispose(): void }> {
    return EDITOR_TOOLS.map((name) => onRequest(editorMethod(name), (params) => this.answer(name, params)));
  }

  /** The answer to `dave/editor/<name>`; rejects with a readable message the model is told. */
  async answer(name: EditorToolName, params: unknown): Promise<unknown> {
    const p = (typeof params === 'object' && params !== null ? params : {}) as Record<string, unknown>;
    switch (name) {
      case 'diagnostics':
        return this.diagnostics(typeof p.uri === 'string' ? p.uri : undefined);
      case 'definition':
        return lspLocations(await this.atPosition<Array<LocationLike | LocationLinkLike>>('vscode.executeDefinitionProvider', p));
      case 'references':
        return lspLocations(await this.atPosition<LocationLike[]>('vscode.executeReferenceProvider', p));
      case 'hover':
        return lspHover(await this.atPosition<HoverLike[]>('vscode.executeHoverProvider', p));
      case 'symbols': {
        const query = typeof p.query === 'string' ? p.query : '';
        const found = await this.api.commands.executeCommand<SymbolInformationLike[] | undefined>('vscode.executeWorkspaceSymbolProvider', query);
        return (found ?? []).map(lspSymbol);
      }
      case 'openEditors':
        return { editors: this.openEditors() };
      case 'selection':
        return this.selection();
    }
  }

  diagnostics(uri?: string): { files: Array<{ uri: string; diagnostics: LspDiagnostic[] }> } {
    if (uri !== undefined) {
      const one = this.api.languages.getDiagnostics(this.api.Uri.parse(uri)) as DiagnosticLike[];
      return { files: [{ uri, diagnostics: one.map(lspDiagnostic) }] };
    }
    const all = this.api.languages.getDiagnostics() as Array<[UriLike, DiagnosticLike[]]>;
    return {
      files: all
        .filter(([u, list]) => isUserDocument(u) && list.length > 0)
        .map(([u, list]) => ({ uri: u.toString(), diagnostics: list.map(lspDiagnostic) })),
    };
  }

  openEditors(): OpenEditorInfo[] {
    const languages = new Map(this.api.workspace.textDocuments.map((d) => [d.uri.toString(), d.languageId]));
    for (const e of this.api.window.visibleTextEditors) languages.set(e.document.uri.toString(), e.document.languageId);
    const active = this.api.window.activeTextEditor?.document.uri.toString();
    const seen = new Map<string, OpenEditorInfo>();
    for (const group of this.api.window.tabGroups.all) {
      for (const tab of group.tabs) {
        const uri = tabUri(tab.input);
        if (uri === undefined || !isUserDocument(uri)) continue;
        const key = uri.toString();
        const isActive = key === active || (tab.isActive && group.isActive && active === undefined);
        const previous = seen.get(key);
        seen.set(key, {
          uri: key,
          languageId: languages.get(key) ?? '',
          isActive: isActive || previous?.isActive === true,
          isDirty: tab.isDirty || previous?.isDirty === true,
        });
      }
    }
    // Visible editors without a tab (none in a normal window, but say them anyway).
    for (const e of this.api.window.visibleTextEditors) {
      const key = e.document.uri.toString();
      if (seen.has(key) || !isUserDocument(e.document.uri)) continue;
      seen.set(key, { uri: key, languageId: e.document.languageId, isActive: key === active, isDirty: e.document.isDirty });
    }
    return [...seen.values()];
  }

  selection(): SelectionInfo | null {
    const editor = this.api.window.activeTextEditor;
    if (editor === undefined) return null;
    return {
      uri: editor.document.uri.toString(),
      range: lspRange(editor.selection),
      text: editor.selection.isEmpty ? '' : editor.document.getText(editor.selection),
    };
  }

  private async atPosition<T>(command: string, p: TextDocumentPositionParams): Promise<T | undefined> {
    const uri = p.textDocument?.uri;
    const line = p.position?.line;
    const character = p.position?.character;
    if (typeof uri !== 'string' || typeof line !== 'number' || typeof character !== 'number') {
      throw new Error('expected {textDocument: {uri}, position: {line, character}}');
    }
    return this.api.commands.executeCommand<T>(command, this.api.Uri.parse(uri), new this.api.Position(line, character));
  }
}
