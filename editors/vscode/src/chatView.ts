/**
 * ChatViewProvider: the "Dave" WebviewView. It serves the shell with a strict
 * Content-Security-Policy, validates what the webview posts and passes it to
 * the ChatController, and posts the controller's updates back.
 */

import { randomBytes } from 'node:crypto';

import * as vscode from 'vscode';

import { parseFromWebview, type FromWebview, type ToWebview } from './shared/messages';
import { shellHtml } from './webview/shell';

export const CHAT_VIEW_ID = 'dave.chat';

export class ChatViewProvider implements vscode.WebviewViewProvider, vscode.Disposable {
  private view: vscode.WebviewView | undefined;
  private readonly disposables: vscode.Disposable[] = [];
  private onMessage: (message: FromWebview) => void = () => undefined;

  constructor(private readonly extensionUri: vscode.Uri) {}

  /** Where the view's messages go; set once the controller exists. */
  setHandler(handler: (message: FromWebview) => void): void {
    this.onMessage = handler;
  }

  resolveWebviewView(view: vscode.WebviewView): void {
    this.view = view;
    const dist = vscode.Uri.joinPath(this.extensionUri, 'dist');
    const media = vscode.Uri.joinPath(this.extensionUri, 'media');
    view.webview.options = { enableScripts: true, localResourceRoots: [dist, media] };
    view.webview.html = shellHtml({
      cspSource: view.webview.cspSource,
      nonce: randomBytes(16).toString('base64'),
      scriptUri: view.webview.asWebviewUri(vscode.Uri.joinPath(dist, 'webview.js')).toString(),
      styleUri: view.webview.asWebviewUri(vscode.Uri.joinPath(media, 'chat.css')).toString(),
    });
    this.disposables.push(
      view.webview.onDidReceiveMessage((raw: unknown) => {
        const message = parseFromWebview(raw);
        if (message !== undefined) this.onMessage(message);
      }),
      view.onDidDispose(() => {
        if (this.view === view) this.view = undefined;
      }),
    );
  }

  post(message: ToWebview): void {
    void this.view?.webview.postMessage(message);
  }

  /**
   * Shows the view and, with `focus`, puts the focus in the message box (with
   * `focus` as its text when it is not empty; "" keeps what is typed there).
   */
  async reveal(focus?: string): Promise<void> {
    await vscode.commands.executeCommand(`${CHAT_VIEW_ID}.focus`);
    if (focus !== undefined) this.post(focus === '' ? { type: 'focusInput' } : { type: 'focusInput', text: focus });
  }

  dispose(): void {
    for (const d of this.disposables.splice(0)) d.dispose();
  }
}
