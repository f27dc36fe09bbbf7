/**
 * The webview's entry point: connects the ChatApp to VS Code's webview API.
 */

import type { FromWebview, ToWebview } from '../shared/messages';
import { ChatApp } from './chatApp';
import { createMarkdownRenderer } from './markdown';

declare function acquireVsCodeApi(): { postMessage(message: FromWebview): void };

const vscode = acquireVsCodeApi();
const app = new ChatApp(document, vscode, createMarkdownRenderer(window), {
  schedule: (fn) => window.requestAnimationFrame(() => fn()),
});
window.addEventListener('message', (event: MessageEvent<ToWebview>) => {
  // Only the extension host posts to this window.
  if (typeof event.data === 'object' && event.data !== null && typeof event.data.type === 'string') {
    app.handle(event.data);
  }
});
app.start();
