/**
 * The VS Code side of a code block's Apply (issue 18, chat/applyCode.ts): the
 * editor the user last had active (the chat has the focus when Apply is
 * clicked, and a diff editor of Dave's own never counts), files named relative
 * to the workspace folder, and reading and writing a file through its open
 * document when there is one. The diff editor is VscodeReview's, shared with
 * the permission proposals.
 */

import * as path from 'node:path';

import * as vscode from 'vscode';

import type { ApplyHost, EditorSnapshot } from '../chat/applyCode';
import type { ProposalView } from '../chat/review';
import { exists, ORIGINAL_SCHEME, PROPOSAL_SCHEME } from './vscodeReview';

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** Remembers the last active editor the user worked in: not a Dave diff, not the Output panel. */
export class LastEditor implements vscode.Disposable {
  private last: vscode.TextEditor | undefined;
  private readonly subscription: vscode.Disposable;

  constructor() {
    this.remember(vscode.window.activeTextEditor);
    this.subscription = vscode.window.onDidChangeActiveTextEditor((editor) => this.remember(editor));
  }

  /** The active editor when it is the user's, else the last one that was (if still open). */
  get(): vscode.TextEditor | undefined {
    const active = vscode.window.activeTextEditor;
    if (active !== undefined && isUserEditor(active)) return active;
    if (this.last !== undefined && !this.last.document.isClosed) {
      // The same document may be shown by a newer editor object; prefer a visible one.
      return vscode.window.visibleTextEditors.find((e) => e.document === this.last!.document) ?? this.last;
    }
    return vscode.window.visibleTextEditors.find(isUserEditor);
  }

  private remember(editor: vscode.TextEditor | undefined): void {
    if (editor !== undefined && isUserEditor(editor)) this.last = editor;
  }

  dispose(): void {
    this.subscription.dispose();
  }
}

function isUserEditor(editor: vscode.TextEditor): boolean {
  return ![PROPOSAL_SCHEME, ORIGINAL_SCHEME, 'output'].includes(editor.document.uri.scheme);
}

function openDocument(file: string): vscode.TextDocument | undefined {
  return vscode.workspace.textDocuments.find((d) => d.uri.scheme === 'file' && d.uri.fsPath === file && !d.isClosed);
}

/** Apply's host in VS Code: `view` is the proposals' diff editor (VscodeReview). */
export function vscodeApplyHost(view: ProposalView, editors: LastEditor): ApplyHost {
  return {
    view,
    lastEditor(): EditorSnapshot | undefined {
      const editor = editors.get();
      // Apply writes files: an untitled editor is for Insert.
      if (editor?.document.uri.scheme !== 'file') return undefined;
      const { document, selection } = editor;
      return {
        path: document.uri.fsPath,
        label: vscode.workspace.asRelativePath(document.uri, false),
        text: document.getText(),
        ...(selection.isEmpty
          ? {}
          : { selection: { start: document.offsetAt(selection.start), end: document.offsetAt(selection.end) } }),
      };
    },
    resolve(name) {
      const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
      if (folder === undefined) return `open a folder to apply a block to ${name}`;
      const file = path.resolve(folder, name);
      const label = path.relative(folder, file);
      if (label === '' || label.startsWith('..') || path.isAbsolute(label)) return `${name} is not a file inside the workspace folder`;
      return { path: file, label: label.split(path.sep).join('/') };
    },
    async read(file) {
      const open = openDocument(file);
      if (open !== undefined) return open.getText();
      try {
        return decoder.decode(await vscode.workspace.fs.readFile(vscode.Uri.file(file)));
      } catch (error) {
        // Not there (whatever the file system calls it), or there and unreadable.
        if (await exists(vscode.Uri.file(file))) throw error;
        return undefined;
      }
    },
    async write(file, text) {
      const uri = vscode.Uri.file(file);
      const open = openDocument(file);
      if (open === undefined) {
        await vscode.workspace.fs.writeFile(uri, encoder.encode(text));
      } else {
        // Through the document, so its undo history keeps the change; saved unless
        // it held unsaved edits of the user's before (those stay theirs to save).
        const wasDirty = open.isDirty;
        const edit = new vscode.WorkspaceEdit();
        edit.replace(uri, new vscode.Range(open.positionAt(0), open.positionAt(open.getText().length)), text);
        if (!(await vscode.workspace.applyEdit(edit))) throw new Error('the editor did not take the edit');
        if (!wasDirty && !(await open.save())) throw new Error('it could not be saved');
      }
      await vscode.window.showTextDocument(uri, { preview: false, viewColumn: vscode.ViewColumn.One });
    },
  };
}
