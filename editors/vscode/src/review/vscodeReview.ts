/**
 * The VS Code side of reviewing changes (issue 14): the documents behind the
 * diff editors, a proposal's diff editor (a ProposalView for review.ts), and
 * the diffs of a turn's changes (a ChangesUi for the controller).
 *
 * - `dave-original:` is read-only (a TextDocumentContentProvider): the file as
 *   it is before a proposal or before a turn, or a proposal's diff text.
 * - `dave-proposal:` is an in-memory FileSystemProvider, so the right side of a
 *   proposal's diff editor is an ordinary editable document: typing, undo, and
 *   the diff editor's own "revert block" arrows all work. Its path is the
 *   file's own (so the breadcrumbs and the language follow the file) and its
 *   query names the request, `request=<id>`.
 *
 * The editor title of a `dave-proposal:` document has Accept and Reject
 * (package.json `menus.editor/title`), which extension.ts routes to the chat
 * controller, i.e. through the PermissionLedger, like the card's buttons.
 */

import * as path from 'node:path';

import * as vscode from 'vscode';

import type { ChangePick, ChangesUi } from '../chat/changes';
import type { ProposalDocument, ProposalView } from '../chat/review';
import type { ChangedFile } from '../protocol/changeTypes';

export const ORIGINAL_SCHEME = 'dave-original';
export const PROPOSAL_SCHEME = 'dave-proposal';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Read-only texts by URI. */
class OriginalDocuments implements vscode.TextDocumentContentProvider {
  private readonly texts = new Map<string, string>();
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.changed.event;

  set(uri: vscode.Uri, text: string): void {
    this.texts.set(uri.toString(), text);
    this.changed.fire(uri);
  }

  deleteRequest(requestId: string): void {
    for (const key of [...this.texts.keys()]) if (requestIdOf(vscode.Uri.parse(key)) === requestId) this.texts.delete(key);
  }

  provideTextDocumentContent(uri: vscode.Uri): string {
    return this.texts.get(uri.toString()) ?? '';
  }

  dispose(): void {
    this.changed.dispose();
  }
}

/** The editable right sides: an in-memory file per request, keyed by path and query. */
class ProposalFiles implements vscode.FileSystemProvider {
  private readonly files = new Map<string, { data: Uint8Array; mtime: number; ctime: number }>();
  private readonly emitter = new vscode.EventEmitter<vscode.FileChangeEvent[]>();
  readonly onDidChangeFile = this.emitter.event;

  put(uri: vscode.Uri, text: string): void {
    const now = Date.now();
    this.files.set(key(uri), { data: encoder.encode(text), mtime: now, ctime: now });
  }

  has(uri: vscode.Uri): boolean {
    return this.files.has(key(uri));
  }

  text(uri: vscode.Uri): string | undefined {
    const file = this.files.get(key(uri));
    return file === undefined ? undefined : decoder.decode(file.data);
  }

  deleteRequest(requestId: string): void {
    for (const k of [...this.files.keys()]) if (requestIdOf(vscode.Uri.parse(`${PROPOSAL_SCHEME}:${k}`)) === requestId) this.files.delete(k);
  }

  watch(): vscode.Disposable {
    return new vscode.Disposable(() => undefined);
  }

  stat(uri: vscode.Uri): vscode.FileStat {
    const file = this.files.get(key(uri));
    if (file !== undefined) return { type: vscode.FileType.File, ctime: file.ctime, mtime: file.mtime, size: file.data.byteLength };
    // The folders above a proposal, for the breadcrumbs.
    return { type: vscode.FileType.Directory, ctime: 0, mtime: 0, size: 0 };
  }

  readDirectory(): [string, vscode.FileType][] {
    return [];
  }

  createDirectory(): void {
    throw vscode.FileSystemError.NoPermissions('Dave proposals hold single files');
  }

  readFile(uri: vscode.Uri): Uint8Array {
    const file = this.files.get(key(uri));
    if (file === undefined) throw vscode.FileSystemError.FileNotFound(uri);
    return file.data;
  }

  writeFile(uri: vscode.Uri, content: Uint8Array): void {
    // Saving the right side keeps the user's version here until it is answered.
    const k = key(uri);
    if (!this.files.has(k)) throw vscode.FileSystemError.NoPermissions('This Dave proposal was answered already');
    const now = Date.now();
    this.files.set(k, { data: content, mtime: now, ctime: this.files.get(k)!.ctime });
    this.emitter.fire([{ type: vscode.FileChangeType.Changed, uri }]);
  }

  delete(uri: vscode.Uri): void {
    this.files.delete(key(uri));
  }

  rename(): void {
    throw vscode.FileSystemError.NoPermissions('Dave proposals cannot be renamed');
  }

  dispose(): void {
    this.emitter.dispose();
  }
}

function key(uri: vscode.Uri): string {
  return `${uri.path}?${uri.query}`;
}

/** A document of request `requestId` at `file`'s path (`suffix`: e.g. `.diff`). */
function requestUri(scheme: string, requestId: string, file: string, suffix = ''): vscode.Uri {
  const where = path.isAbsolute(file) ? file : `/${path.basename(file) || 'file'}`;
  return vscode.Uri.from({ scheme, path: `${where}${suffix}`, query: `request=${encodeURIComponent(requestId)}` });
}

/** The request a `dave-proposal:` or `dave-original:` URI belongs to. */
export function requestIdOf(uri: vscode.Uri | undefined): string | undefined {
  if (uri === undefined || (uri.scheme !== PROPOSAL_SCHEME && uri.scheme !== ORIGINAL_SCHEME)) return undefined;
  const match = /(?:^|&)request=([^&]*)/.exec(uri.query);
  if (match === null || match[1] === '') return undefined;
  try {
    return decodeURIComponent(match[1]);
  } catch {
    return undefined;
  }
}

export class VscodeReview implements ProposalView, ChangesUi, vscode.Disposable {
  private readonly originals = new OriginalDocuments();
  private readonly proposals = new ProposalFiles();
  private readonly disposables: vscode.Disposable[];
  private reviews = 0;
  /** The file of each open proposal, by request id. */
  private readonly paths = new Map<string, string>();

  constructor() {
    this.disposables = [
      vscode.workspace.registerTextDocumentContentProvider(ORIGINAL_SCHEME, this.originals),
      vscode.workspace.registerFileSystemProvider(PROPOSAL_SCHEME, this.proposals, { isCaseSensitive: true }),
      this.originals,
      this.proposals,
    ];
  }

  // ---- ProposalView ----------------------------------------------------

  async open(document: ProposalDocument): Promise<void> {
    const options: vscode.TextDocumentShowOptions = { preview: false, preserveFocus: true };
    if (document.original !== undefined && document.proposed !== undefined) {
      const left = requestUri(ORIGINAL_SCHEME, document.requestId, document.path);
      const right = requestUri(PROPOSAL_SCHEME, document.requestId, document.path);
      this.originals.set(left, document.original);
      // Opened again after the user closed it: keep what they saved.
      if (!this.proposals.has(right)) this.proposals.put(right, document.proposed);
      this.paths.set(document.requestId, document.path);
      await vscode.commands.executeCommand('vscode.diff', left, right, document.title, options);
      return;
    }
    // Truncated: the diff itself, read-only; the card answers.
    const diff = requestUri(ORIGINAL_SCHEME, document.requestId, document.path, '.diff');
    this.originals.set(diff, document.diff);
    const shown = await vscode.workspace.openTextDocument(diff);
    await vscode.window.showTextDocument(shown, options);
  }

  async close(requestId: string): Promise<void> {
    const ours = (uri: vscode.Uri | undefined): boolean => requestIdOf(uri) === requestId;
    // Save the right side first (into memory), so closing it asks nothing: the answer has gone.
    for (const doc of vscode.workspace.textDocuments) {
      if (doc.uri.scheme === PROPOSAL_SCHEME && ours(doc.uri) && doc.isDirty) await doc.save();
    }
    const tabs = vscode.window.tabGroups.all.flatMap((group) =>
      group.tabs.filter((tab) => {
        const input = tab.input;
        if (input instanceof vscode.TabInputTextDiff) return ours(input.modified) || ours(input.original);
        if (input instanceof vscode.TabInputText) return ours(input.uri);
        return false;
      }),
    );
    if (tabs.length > 0) await vscode.window.tabGroups.close(tabs, true);
    this.proposals.deleteRequest(requestId);
    this.originals.deleteRequest(requestId);
    this.paths.delete(requestId);
  }

  text(requestId: string): string | undefined {
    const file = this.paths.get(requestId);
    if (file === undefined) return undefined;
    const right = requestUri(PROPOSAL_SCHEME, requestId, file);
    const open = vscode.workspace.textDocuments.find((d) => d.uri.toString() === right.toString());
    // The editor's text, unsaved edits included; else what was saved (or proposed) when it closed.
    if (open !== undefined && !open.isClosed) return open.getText();
    return this.proposals.text(right);
  }

  // ---- ChangesUi -------------------------------------------------------

  async show(title: string, files: ChangedFile[]): Promise<void> {
    this.reviews += 1;
    const snapshot = (file: string, side: string): vscode.Uri =>
      vscode.Uri.from({ scheme: ORIGINAL_SCHEME, path: file, query: `review=${this.reviews}&side=${side}` });
    const triples: Array<[vscode.Uri, vscode.Uri, vscode.Uri]> = [];
    for (const file of files) {
      const resource = vscode.Uri.file(file.path);
      const left = snapshot(file.path, 'before');
      this.originals.set(left, file.before ?? '');
      // The right side is the file itself while it is there, so the diff editor's
      // block revert arrows and edits work on it; else what the turn left.
      let right = resource;
      if (file.status === 'deleted' || !(await exists(resource))) {
        right = snapshot(file.path, 'after');
        this.originals.set(right, file.after ?? '');
      }
      triples.push([resource, left, right]);
    }
    const commands = await vscode.commands.getCommands(true);
    if (commands.includes('vscode.changes') && triples.length > 1) {
      await vscode.commands.executeCommand('vscode.changes', title, triples);
      return;
    }
    for (const [resource, left, right] of triples) {
      const label = vscode.workspace.asRelativePath(resource, false);
      await vscode.commands.executeCommand('vscode.diff', left, right, `${label} (Dave's change)`, { preview: false });
    }
  }

  async pick<T extends ChangePick>(items: T[], title: string): Promise<T | undefined> {
    return vscode.window.showQuickPick(items, { title, matchOnDescription: true, matchOnDetail: true });
  }

  warn(message: string): void {
    void vscode.window.showWarningMessage(message);
  }

  info(message: string): void {
    void vscode.window.showInformationMessage(message);
  }

  dispose(): void {
    for (const d of this.disposables.splice(0)) d.dispose();
  }
}

/** Whether the file system has `uri`. */
export async function exists(uri: vscode.Uri): Promise<boolean> {
  try {
    await vscode.workspace.fs.stat(uri);
    return true;
  } catch {
    return false;
  }
}
