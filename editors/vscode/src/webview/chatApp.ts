/**
 * The chat view inside the webview: builds its parts on the shell (shell.ts)
 * and routes the extension's messages to them: the Toolbar (sessions,
 * pickers, meter), the Transcript (items and cards), the StatusLine and the
 * Composer (message box, images, chips, queue, suggestions). It holds no
 * conversation state of its own beyond what is on screen; the extension
 * resends everything on `ready`.
 */

import type { ChatViewState, FromWebview, ToWebview } from '../shared/messages';
import { Composer, readAsDataUrl } from './composer';
import { elementMaker, required } from './dom';
import type { MarkdownRenderer } from './markdown';
import { StatusLine } from './statusLine';
import { Toolbar } from './toolbar';
import { Transcript } from './transcript';

export interface WebviewHost {
  postMessage(message: FromWebview): void;
}

export interface ChatAppOptions {
  /** Defers markdown re-rendering while tokens stream (requestAnimationFrame in the webview). */
  schedule?: (fn: () => void) => void;
  /** Waits before asking for `@` file completions (debounce); setTimeout by default. */
  debounce?: (fn: () => void, ms: number) => () => void;
  /** Reads a pasted or dropped image as a data: URL (FileReader by default). */
  readImage?: (file: Blob) => Promise<string>;
  /** Runs `fn` every `ms` (the retry countdown); setInterval by default. Returns a stop. */
  every?: (fn: () => void, ms: number) => () => void;
  /** The clock of the retry countdown; Date.now by default. */
  now?: () => number;
}

export class ChatApp {
  private readonly toolbar: Toolbar;
  private readonly transcript: Transcript;
  private readonly status: StatusLine;
  private readonly composer: Composer;

  constructor(
    doc: Document,
    private readonly host: WebviewHost,
    markdown: MarkdownRenderer,
    options: ChatAppOptions = {},
  ) {
    const el = elementMaker(doc);
    const post = (message: FromWebview): void => host.postMessage(message);
    this.status = new StatusLine(
      required(doc, '#status'),
      options.every ??
        ((fn, ms) => {
          const timer = setInterval(fn, ms);
          return () => clearInterval(timer);
        }),
      options.now ?? (() => Date.now()),
    );
    this.composer = new Composer(doc, el, post, {
      debounce:
        options.debounce ??
        ((fn, ms) => {
          const timer = setTimeout(fn, ms);
          return () => clearTimeout(timer);
        }),
      readImage: options.readImage ?? readAsDataUrl,
      note: (text) => this.status.note(text),
    });
    this.transcript = new Transcript(
      required(doc, '#transcript'),
      el,
      post,
      markdown,
      options.schedule ?? ((fn) => setTimeout(fn, 16)),
      () => this.composer.focus(),
    );
    this.toolbar = new Toolbar(doc, post);
    this.setBusy(false);
  }

  /** Tells the extension the view is ready for its state. */
  start(): void {
    this.host.postMessage({ type: 'ready' });
  }

  handle(message: ToWebview): void {
    switch (message.type) {
      case 'state':
        this.setState(message.state);
        break;
      case 'sessions':
        this.toolbar.setSessions(message.sessions, message.activeSessionId);
        break;
      case 'append':
        this.transcript.append(message.item, message.item.kind === 'user' && this.composer.takeSent());
        break;
      case 'update':
        this.transcript.update(message.item);
        break;
      case 'appendText':
        this.transcript.appendText(message.itemId, message.text);
        break;
      case 'busy':
        this.setBusy(message.busy);
        break;
      case 'status':
        this.status.set(message.text, message.retry);
        break;
      case 'chips':
        this.composer.setChips(message.chips);
        break;
      case 'focusInput':
        this.composer.focus(message.text);
        break;
      case 'queue':
        this.composer.setQueue(message.queued);
        break;
      case 'settings':
        this.toolbar.setSettings(message.settings);
        break;
      case 'meter':
        this.toolbar.setMeter(message.meter);
        break;
      case 'commands':
        this.composer.setCommands(message.commands);
        break;
      case 'files':
        this.composer.setFiles(message.query, message.paths);
        break;
    }
  }

  /** Renders any streamed text still waiting for the next frame. */
  flush(): void {
    this.transcript.flush();
  }

  private setState(state: ChatViewState): void {
    this.transcript.reset(state.items, state.welcome);
    this.toolbar.setSessions(state.sessions, state.activeSessionId);
    this.setBusy(state.busy);
    this.status.set(state.status);
    this.composer.setQueue(state.queued ?? []);
    this.composer.setChips(state.chips ?? []);
    if (state.settings !== undefined) this.toolbar.setSettings(state.settings);
    this.toolbar.setMeter(state.meter);
    this.transcript.scrollToBottom();
  }

  private setBusy(busy: boolean): void {
    this.composer.setBusy(busy);
    if (!busy) this.status.settle();
    this.transcript.setBusy(busy);
  }
}
