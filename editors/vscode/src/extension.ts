/**
 * The extension's entry point: wires the server connection, the chat
 * controller and the chat view together, and registers the commands.
 */

import * as vscode from 'vscode';

import { CodeApplier } from './chat/applyCode';
import { ChatController } from './chat/chatController';
import { selectionChip } from './chat/promptContext';
import { ProposalReview } from './chat/review';
import { manageRules } from './chat/rules';
import { ChatViewProvider, CHAT_VIEW_ID } from './chatView';
import { activeFileContext, EditorTools } from './editor/editorTools';
import { readSetting, WorkspaceTrust } from './editor/trust';
import { errorMessage } from './protocol/errors';
import type { PermissionMode } from './protocol/types';
import { LastEditor, vscodeApplyHost } from './review/vscodeApply';
import { VscodeReview, requestIdOf } from './review/vscodeReview';
import { registerServerCommands } from './server/commands';
import { InstallError, ServerInstaller } from './server/installer';
import { ServerConnection } from './serverConnection';

let controller: ChatController | undefined;
let server: ServerConnection | undefined;

export function activate(context: vscode.ExtensionContext): void {
  const output = vscode.window.createOutputChannel('Dave', { log: true });
  // The editor's tools for the model (issue 15): the vscode module is the API they use.
  // Workspace trust decides whether the folders' Claude Code settings load (issue 24).
  const trust = new WorkspaceTrust(vscode, context.globalState, (message) => output.warn(message));
  // With no server set and none on PATH, the extension installs its own (issue 28).
  const installer = new ServerInstaller(context, output);
  server = new ServerConnection(output, new EditorTools(vscode), trust, installer);
  const connection = server;
  const view = new ChatViewProvider(context.extensionUri);
  const review = new VscodeReview();
  const proposals = new ProposalReview(review, (message) => output.warn(message));
  // A code block's Apply: the same diff editor as a proposal, answered in the extension alone.
  const lastEditor = new LastEditor();
  const applier = new CodeApplier(vscodeApplyHost(review, lastEditor));

  const chat = new ChatController({
    cwd: vscode.workspace.workspaceFolders?.[0]?.uri.fsPath,
    proposals,
    changesUi: review,
    getClient: (onInstalling) => connection.client(onInstalling),
    post: (message) => view.post(message),
    store: context.workspaceState,
    log: (message) => output.warn(message),
    confirmDelete: async (title) => {
      const answer = await vscode.window.showWarningMessage(
        `Delete the Dave session "${title}"? Its transcript is removed here and on the server.`,
        { modal: true },
        'Delete',
      );
      return answer === 'Delete';
    },
    onBusyChanged: (busy) => void vscode.commands.executeCommand('setContext', 'dave.busy', busy),
    activeFile: () =>
      vscode.workspace.getConfiguration('dave').get<boolean>('context.activeFile', true)
        ? activeFileContext(vscode.window.activeTextEditor)
        : undefined,
    findFiles: (query) => findFiles(query),
    welcome: () => {
      const config = vscode.workspace.getConfiguration('dave');
      return { backend: config.get<string>('backend') || 'claude', model: config.get<string>('model') ?? '' };
    },
    copyText: async (text) => {
      await vscode.env.clipboard.writeText(text);
    },
    insertText: (text) => insertAtCursor(lastEditor.get(), text),
    applyCode: (code, info) => applier.apply(info === undefined ? { code } : { code, info }),
    openFile: async (file) => {
      await vscode.window.showTextDocument(vscode.Uri.file(file), { preview: true, viewColumn: vscode.ViewColumn.One });
    },
    // A folder's own settings may not start its sessions in bypassPermissions before it is trusted.
    defaultPermissionMode: () =>
      readSetting<PermissionMode>(vscode.workspace.getConfiguration('dave'), 'permissionMode', vscode.workspace.isTrusted) ?? 'default',
  });
  controller = chat;
  view.setHandler((message) => {
    chat.handleMessage(message).catch((error: unknown) => output.error(`Chat view message failed: ${String(error)}`));
  });

  /** The request (or Apply) of the proposal editor the command came from (its title bar passes the URI). */
  const proposalOf = (uri: unknown): string | undefined =>
    requestIdOf(uri instanceof vscode.Uri ? uri : vscode.window.activeTextEditor?.document.uri);
  const proposalRequest = (requestId: string | undefined): string | undefined => {
    if (requestId === undefined || !proposals.has(requestId)) {
      void vscode.window.showInformationMessage('Dave is no longer waiting for an answer to this proposal.');
      return undefined;
    }
    return requestId;
  };

  context.subscriptions.push(
    output,
    connection,
    view,
    review,
    lastEditor,
    vscode.window.registerWebviewViewProvider(CHAT_VIEW_ID, view, {
      webviewOptions: { retainContextWhenHidden: true },
    }),
    connection.onDidStop(() => chat.serverStopped()),
    // Opens the chat with the focus in its message box (Ctrl+Alt+D).
    vscode.commands.registerCommand('dave.openChat', () => view.reveal('')),
    vscode.commands.registerCommand('dave.newSession', async () => {
      chat.newSession();
      await view.reveal();
    }),
    vscode.commands.registerCommand('dave.cancel', () => {
      if (!chat.stop()) void vscode.window.showInformationMessage('Dave is not answering right now.');
    }),
    vscode.commands.registerCommand('dave.deleteSession', async () => {
      const id = chat.activeSessionId;
      if (id === undefined) {
        void vscode.window.showInformationMessage('There is no Dave session to delete.');
        return;
      }
      await chat.deleteSession(id);
    }),
    vscode.commands.registerCommand('dave.restartServer', async () => {
      try {
        await connection.restart();
        void vscode.window.setStatusBarMessage('Dave: server restarted', 3000);
      } catch (error) {
        // A failed install has shown its own message, with Retry.
        if (error instanceof InstallError) return;
        void vscode.window.showErrorMessage(error instanceof Error ? error.message : String(error));
      }
    }),
    ...registerServerCommands(connection, installer, output),
    vscode.commands.registerCommand('dave.manageRules', async () => {
      try {
        const message = await manageRules(await connection.client(), chat.activeSessionId, {
          pick: (items) =>
            Promise.resolve(
              vscode.window.showQuickPick(items, {
                title: 'Dave: Permission Rules of this session',
                placeHolder: 'Pick a rule to remove it (Escape keeps them all)',
                matchOnDescription: true,
              }),
            ),
        });
        if (message !== undefined) void vscode.window.showInformationMessage(message);
      } catch (error) {
        void vscode.window.showErrorMessage(`Dave could not manage the permission rules: ${errorMessage(error)}`);
      }
    }),
    vscode.commands.registerCommand('dave.askAboutSelection', () => askAboutSelection(chat, view)),
    vscode.commands.registerCommand('dave.acceptProposal', async (uri: unknown) => {
      const id = proposalOf(uri);
      if (id !== undefined && applier.has(id)) {
        const { written, message } = await applier.accept(id);
        chat.postStatusNote(message);
        if (written) void vscode.window.showInformationMessage(message);
        else void vscode.window.showWarningMessage(message);
        return;
      }
      const requestId = proposalRequest(id);
      if (requestId !== undefined) await chat.answerPermission(requestId, 'allow');
    }),
    vscode.commands.registerCommand('dave.rejectProposal', async (uri: unknown) => {
      const id = proposalOf(uri);
      if (id !== undefined && applier.has(id)) {
        chat.postStatusNote(await applier.reject(id));
        return;
      }
      const requestId = proposalRequest(id);
      if (requestId === undefined) return;
      const reason = await vscode.window.showInputBox({
        title: "Reject Dave's proposal",
        prompt: 'Why? Optional; the model is told. Escape keeps the proposal open.',
        placeHolder: 'Reason (optional)',
      });
      if (reason !== undefined) await chat.answerPermission(requestId, 'deny', reason.trim());
    }),
    vscode.commands.registerCommand('dave.reviewLastChanges', () => chat.reviewLastChanges()),
    vscode.commands.registerCommand('dave.undoLastChanges', () => chat.undoLastChanges()),
    vscode.workspace.onDidChangeConfiguration(async (event) => {
      if (!event.affectsConfiguration('dave') || !connection.isRunning) return;
      // Read at each prompt: no restart needed.
      if (event.affectsConfiguration('dave.context') && !['server', 'backend', 'model', 'permissionMode'].some((k) => event.affectsConfiguration(`dave.${k}`))) return;
      const answer = await vscode.window.showInformationMessage(
        'Dave settings changed. Restart the Dave server to apply them? Running answers are stopped.',
        'Restart',
        'Later',
      );
      if (answer === 'Restart') await vscode.commands.executeCommand('dave.restartServer');
    }),
  );
}

/**
 * "Ask Dave About Selection": the selection becomes a chip in the message box
 * that goes with the next message (sent, or queued while Dave answers); the
 * focus goes to the message box for the question. Nothing is sent yet.
 */
async function askAboutSelection(chat: ChatController, view: ChatViewProvider): Promise<void> {
  const editor = vscode.window.activeTextEditor;
  if (editor === undefined || editor.selection.isEmpty) {
    void vscode.window.showInformationMessage(
      editor === undefined
        ? 'Open a file and select some code, then run "Ask Dave About Selection".'
        : 'Nothing is selected: select the code to ask Dave about, then run "Ask Dave About Selection" again.',
    );
    return;
  }
  const { document, selection } = editor;
  const chip = selectionChip(
    { path: document.uri.fsPath, label: vscode.workspace.asRelativePath(document.uri, false), languageId: document.languageId },
    {
      start: { line: selection.start.line, character: selection.start.character },
      end: { line: selection.end.line, character: selection.end.character },
    },
    document.getText(selection),
  );
  if (chip === undefined) return;
  chat.addContext(chip);
  await view.reveal('');
}

/** A code block's Insert at cursor: into the editor the user last worked in (the chat has the focus now). */
async function insertAtCursor(editor: vscode.TextEditor | undefined, text: string): Promise<string | undefined> {
  if (editor === undefined) return 'open a file to insert it into';
  const done = await editor.edit((edit) => {
    for (const selection of editor.selections) edit.replace(selection, text);
  });
  return done ? undefined : 'the editor did not take the edit';
}

/** Workspace files for an `@` completion: paths relative to the workspace, best matches first. */
async function findFiles(query: string): Promise<string[]> {
  const q = query.replace(/[[\]{}*?!]/g, '');
  const glob = q === '' ? '**/*' : `**/*${q.split('').join('*')}*`;
  const found = await vscode.workspace.findFiles(glob, '**/{node_modules,.git,.venv,dist,out}/**', 200);
  const paths = found.map((uri) => vscode.workspace.asRelativePath(uri, false));
  const lower = q.toLowerCase();
  const score = (p: string): number => {
    const l = p.toLowerCase();
    const base = l.slice(l.lastIndexOf('/') + 1);
    if (base.startsWith(lower)) return 0;
    if (l.includes(lower)) return 1;
    return 2;
  };
  return paths.sort((a, b) => score(a) - score(b) || a.length - b.length || a.localeCompare(b)).slice(0, 20);
}

export async function deactivate(): Promise<void> {
  await controller?.flush();
  await server?.stop();
}
