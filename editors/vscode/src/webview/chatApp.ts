/**
 * The chat view inside the webview: renders the items the extension sends,
 * streams text into the open assistant message, and turns clicks and keys into
 * typed messages back. It holds no conversation state of its own beyond what
 * is on screen; the extension resends everything on `ready`.
 */

import {
  PERMISSION_MODES,
  type ChatItem,
  type ChatViewState,
  type ContextChip,
  type FromWebview,
  type ImageAttachment,
  type Meter,
  type PermissionAnswer,
  type PermissionMode,
  type QueuedPrompt,
  type RetryInfo,
  type SessionSettings,
  type SessionSummary,
  type SlashCommand,
  type ToWebview,
  type Welcome,
  retryText,
} from '../shared/messages';
import type { MarkdownRenderer } from './markdown';

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

const MODE_LABELS: Record<PermissionMode, string> = {
  default: 'Ask before changes',
  acceptEdits: 'Accept edits',
  plan: 'Plan only',
  bypassPermissions: 'Bypass permissions',
};
/** The model picker's choices besides the session's own ("" is the backend's default). */
export const MODEL_CHOICES: ReadonlyArray<[string, string]> = [
  ['', 'Default model'],
  ['sonnet', 'Sonnet'],
  ['opus', 'Opus'],
  ['haiku', 'Haiku'],
];
const IMAGE_TYPES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp']);
const MAX_IMAGE_BYTES = 5 * 1024 * 1024;

interface Completion {
  kind: 'command' | 'file';
  /** Where the completed word starts in the input, and what it replaces up to the caret. */
  start: number;
  end: number;
  query: string;
  options: Array<{ label: string; detail: string; insert: string }>;
  selected: number;
}

function required<T extends Element>(doc: Document, selector: string): T {
  const el = doc.querySelector<T>(selector);
  if (el === null) throw new Error(`chat shell is missing ${selector}`);
  return el;
}

export class ChatApp {
  private items = new Map<string, ChatItem>();
  private nodes = new Map<string, HTMLElement>();
  private dirty = new Set<string>();
  private renderScheduled = false;
  private busy = false;
  private activeSessionId: string | undefined;
  /** Permission cards already answered here: each posts at most once. */
  private answered = new Set<string>();

  private readonly transcript: HTMLElement;
  private readonly input: HTMLTextAreaElement;
  private readonly sendButton: HTMLButtonElement;
  private readonly stopButton: HTMLButtonElement;
  private readonly statusLine: HTMLElement;
  private readonly sessionSelect: HTMLSelectElement;
  private readonly deleteButton: HTMLButtonElement;
  private readonly queueButton: HTMLButtonElement;
  private readonly queueList: HTMLElement;
  private readonly attachmentList: HTMLElement;
  private readonly completionList: HTMLElement;
  private readonly modelSelect: HTMLSelectElement;
  private readonly modeSelect: HTMLSelectElement;
  private readonly meterBox: HTMLElement;
  private readonly schedule: (fn: () => void) => void;
  private readonly debounce: (fn: () => void, ms: number) => () => void;
  private readonly readImage: (file: Blob) => Promise<string>;
  /** Images for the next send: the attachment and its data: URL for the thumbnail. */
  private images: Array<{ attachment: ImageAttachment; url: string }> = [];
  private commands: SlashCommand[] | undefined;
  private commandsAsked = false;
  private completion: Completion | undefined;
  private cancelFileQuery: (() => void) | undefined;
  private fileQuery: string | undefined;
  private readonly every: (fn: () => void, ms: number) => () => void;
  private readonly now: () => number;
  /** The retry countdown's stop, while a `retrying` status shows. */
  private stopCountdown: (() => void) | undefined;
  private readonly chipList: HTMLElement;
  private chips: ContextChip[] = [];
  private welcome: Welcome | undefined;
  /** Set by Send: the prompt's bubble scrolls the transcript to the bottom, wherever it was. */
  private sentJustNow = false;

  constructor(
    private readonly doc: Document,
    private readonly host: WebviewHost,
    private readonly markdown: MarkdownRenderer,
    options: ChatAppOptions = {},
  ) {
    this.schedule = options.schedule ?? ((fn) => setTimeout(fn, 16));
    this.debounce =
      options.debounce ??
      ((fn, ms) => {
        const timer = setTimeout(fn, ms);
        return () => clearTimeout(timer);
      });
    this.readImage = options.readImage ?? readAsDataUrl;
    this.every =
      options.every ??
      ((fn, ms) => {
        const timer = setInterval(fn, ms);
        return () => clearInterval(timer);
      });
    this.now = options.now ?? (() => Date.now());
    this.chipList = required(doc, '#chips');
    this.transcript = required(doc, '#transcript');
    this.input = required(doc, '#message');
    this.sendButton = required(doc, '#send');
    this.stopButton = required(doc, '#stop');
    this.statusLine = required(doc, '#status');
    this.sessionSelect = required(doc, '#session-select');
    this.deleteButton = required(doc, '#delete-session');
    const newButton = required<HTMLButtonElement>(doc, '#new-session');
    const composer = required<HTMLFormElement>(doc, '#composer');
    this.queueButton = required(doc, '#queue-send');
    this.queueList = required(doc, '#queue');
    this.attachmentList = required(doc, '#attachments');
    this.completionList = required(doc, '#completions');
    this.modelSelect = required(doc, '#model-select');
    this.modeSelect = required(doc, '#mode-select');
    this.meterBox = required(doc, '#meter');

    composer.addEventListener('submit', (event) => {
      event.preventDefault();
      this.send();
    });
    this.input.addEventListener('keydown', (event) => {
      if (this.completionKey(event)) return;
      if (event.key !== 'Enter' || event.shiftKey || event.isComposing || event.altKey) return;
      if (event.ctrlKey || event.metaKey) {
        // Ctrl+Enter: send, or queue while Dave answers.
        event.preventDefault();
        this.send(true);
      } else {
        event.preventDefault();
        this.send();
      }
    });
    this.input.addEventListener('input', () => this.updateCompletion());
    this.input.addEventListener('blur', () => {
      // A click on a suggestion lands first (mousedown keeps the focus).
      this.closeCompletion();
    });
    this.input.addEventListener('paste', (event) => {
      const files = [...(event.clipboardData?.items ?? [])]
        .filter((i) => i.kind === 'file')
        .map((i) => i.getAsFile())
        .filter((f): f is File => f !== null);
      if (files.some((f) => IMAGE_TYPES.has(f.type))) {
        event.preventDefault();
        void this.addImages(files);
      }
    });
    composer.addEventListener('dragover', (event) => {
      if ([...(event.dataTransfer?.items ?? [])].some((i) => i.kind === 'file')) event.preventDefault();
    });
    composer.addEventListener('drop', (event) => {
      const files = [...(event.dataTransfer?.files ?? [])];
      if (files.length > 0) {
        event.preventDefault();
        void this.addImages(files);
      }
    });
    this.queueButton.addEventListener('click', () => this.send(true));
    this.modelSelect.append(...MODEL_CHOICES.map(([value, label]) => this.option(value, label)));
    this.modeSelect.append(...PERMISSION_MODES.map((mode) => this.option(mode, MODE_LABELS[mode])));
    this.modelSelect.addEventListener('change', () => this.host.postMessage({ type: 'setModel', model: this.modelSelect.value }));
    this.modeSelect.addEventListener('change', () =>
      this.host.postMessage({ type: 'setPermissionMode', mode: this.modeSelect.value as PermissionMode }),
    );
    this.stopButton.addEventListener('click', () => this.stop());
    // Escape stops the answer while the chat has the focus (suggestions take it first).
    doc.addEventListener('keydown', (event) => {
      if (event.key !== 'Escape' || event.defaultPrevented || !this.busy) return;
      // A card's own field (a Deny reason, an answer) keeps its Escape.
      const target = event.target as HTMLElement | null;
      if (target !== null && target !== this.input && (target.tagName === 'INPUT' || target.tagName === 'TEXTAREA')) return;
      event.preventDefault();
      this.stop();
    });
    newButton.addEventListener('click', () => this.host.postMessage({ type: 'newSession' }));
    this.deleteButton.addEventListener('click', () => {
      if (this.activeSessionId !== undefined) {
        this.host.postMessage({ type: 'deleteSession', sessionId: this.activeSessionId });
      }
    });
    this.sessionSelect.addEventListener('change', () => {
      const id = this.sessionSelect.value;
      if (id !== '' && id !== this.activeSessionId) this.host.postMessage({ type: 'switchSession', sessionId: id });
    });
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
        this.setSessions(message.sessions, message.activeSessionId);
        break;
      case 'append': {
        const sent = this.sentJustNow && message.item.kind === 'user';
        if (sent) this.sentJustNow = false;
        this.followBottom(() => this.upsert(message.item), sent);
        this.revealIfAsking(message.item);
        break;
      }
      case 'update':
        this.followBottom(() => this.upsert(message.item));
        break;
      case 'appendText': {
        const item = this.items.get(message.itemId);
        if (item !== undefined && (item.kind === 'assistant' || item.kind === 'thinking')) {
          item.text += message.text;
          this.markDirty(item.id);
        }
        break;
      }
      case 'busy':
        this.setBusy(message.busy);
        break;
      case 'status':
        this.setStatus(message.text, message.retry);
        break;
      case 'chips':
        this.setChips(message.chips);
        break;
      case 'focusInput':
        if (message.text !== undefined) this.input.value = message.text;
        this.input.focus();
        break;
      case 'queue':
        this.setQueue(message.queued);
        break;
      case 'settings':
        this.setSettings(message.settings);
        break;
      case 'meter':
        this.setMeter(message.meter);
        break;
      case 'commands':
        this.commands = message.commands;
        this.updateCompletion();
        break;
      case 'files':
        if (message.query === this.fileQuery) this.showFiles(message.query, message.paths);
        break;
    }
  }

  /** Renders any streamed text still waiting for the next frame. */
  flush(): void {
    this.renderScheduled = false;
    if (this.dirty.size === 0) return;
    const ids = [...this.dirty];
    this.dirty.clear();
    this.followBottom(() => {
      for (const id of ids) {
        const item = this.items.get(id);
        const node = this.nodes.get(id);
        if (item !== undefined && node !== undefined) this.fill(node, item);
      }
    });
  }

  private setState(state: ChatViewState): void {
    this.items.clear();
    this.nodes.clear();
    this.dirty.clear();
    this.answered.clear();
    this.transcript.replaceChildren();
    for (const item of state.items) this.upsert(item);
    this.setSessions(state.sessions, state.activeSessionId);
    this.welcome = state.welcome;
    this.renderWelcome();
    this.setBusy(state.busy);
    this.setStatus(state.status);
    this.setQueue(state.queued ?? []);
    this.setChips(state.chips ?? []);
    if (state.settings !== undefined) this.setSettings(state.settings);
    this.setMeter(state.meter);
    this.transcript.scrollTop = this.transcript.scrollHeight;
  }

  private option(value: string, label: string): HTMLOptionElement {
    const option = this.doc.createElement('option');
    option.value = value;
    option.textContent = label;
    return option;
  }

  private setQueue(queued: QueuedPrompt[]): void {
    this.queueList.hidden = queued.length === 0;
    this.queueList.replaceChildren(
      ...queued.map((q, index) => {
        const row = this.el('div', 'queued-item');
        row.setAttribute('role', 'listitem');
        row.dataset.id = q.id;
        const images = q.images > 0 ? ` (+${q.images} image${q.images === 1 ? '' : 's'})` : '';
        row.append(this.el('span', 'queued-label', `Queued ${index + 1}`), this.el('span', 'queued-text', `${q.text}${images}`));
        const remove = this.el('button', 'unqueue secondary', '×');
        remove.type = 'button';
        remove.setAttribute('aria-label', `Remove queued prompt: ${q.text}`);
        remove.title = 'Remove it before it runs';
        remove.addEventListener('click', () => this.host.postMessage({ type: 'unqueue', id: q.id }));
        row.append(remove);
        return row;
      }),
    );
  }

  private setSettings(settings: SessionSettings): void {
    if (![...this.modelSelect.options].some((o) => o.value === settings.model)) {
      this.modelSelect.append(this.option(settings.model, settings.model));
    }
    this.modelSelect.value = settings.model;
    this.modeSelect.value = settings.permissionMode;
  }

  private setMeter(meter: Meter | undefined): void {
    const text = meterText(meter);
    this.meterBox.hidden = text === '';
    const bar = this.meterBox.querySelector('meter');
    const tokens = meter?.contextTokens;
    const window = meter?.contextWindow;
    if (bar !== null) {
      bar.hidden = tokens === undefined || window === undefined || window <= 0;
      bar.value = tokens !== undefined && window !== undefined && window > 0 ? Math.min(1, tokens / window) : 0;
    }
    const label = this.meterBox.querySelector('#meter-text');
    if (label !== null) label.textContent = text;
    this.meterBox.title =
      tokens !== undefined
        ? `The conversation is ${tokens.toLocaleString('en')} tokens${window !== undefined ? ` of the model's ${window.toLocaleString('en')}` : ''}`
        : '';
  }

  // ---- images --------------------------------------------------------------

  private async addImages(files: readonly File[]): Promise<void> {
    for (const file of files) {
      if (!IMAGE_TYPES.has(file.type)) {
        this.statusLine.textContent = `Not an image Dave can read: ${file.name || file.type} (PNG, JPEG, GIF or WebP)`;
        continue;
      }
      if (file.size > MAX_IMAGE_BYTES) {
        this.statusLine.textContent = `${file.name || 'The image'} is over 5 MB`;
        continue;
      }
      const url = await this.readImage(file);
      const data = url.slice(url.indexOf(',') + 1);
      this.images.push({ attachment: { type: 'image', mediaType: file.type, data }, url });
    }
    this.renderImages();
  }

  private renderImages(): void {
    this.attachmentList.hidden = this.images.length === 0;
    this.attachmentList.replaceChildren(
      ...this.images.map((image, index) => {
        const chip = this.el('div', 'attachment');
        chip.setAttribute('role', 'listitem');
        const thumb = this.el('img', 'thumbnail');
        thumb.src = image.url;
        thumb.alt = `Image ${index + 1}`;
        const remove = this.el('button', 'remove-image secondary', '×');
        remove.type = 'button';
        remove.setAttribute('aria-label', `Remove image ${index + 1}`);
        remove.addEventListener('click', () => {
          this.images.splice(index, 1);
          this.renderImages();
          this.input.focus();
        });
        chip.append(thumb, remove);
        return chip;
      }),
    );
  }

  // ---- completion: / commands and @ files ---------------------------------

  /** What the text before the caret asks to complete, if anything. */
  private completionContext(): { kind: 'command' | 'file'; start: number; end: number; query: string } | undefined {
    const end = this.input.selectionStart ?? this.input.value.length;
    const before = this.input.value.slice(0, end);
    const slash = /^\/(\S*)$/.exec(before);
    if (slash !== null) return { kind: 'command', start: 0, end, query: slash[1] ?? '' };
    const at = /(?:^|[\s([{])@([^\s@]*)$/.exec(before);
    if (at !== null) {
      const query = at[1] ?? '';
      return { kind: 'file', start: end - query.length - 1, end, query };
    }
    return undefined;
  }

  private updateCompletion(): void {
    const context = this.completionContext();
    if (context === undefined) {
      this.closeCompletion();
      return;
    }
    if (context.kind === 'command') {
      if (this.commands === undefined) {
        if (!this.commandsAsked) {
          this.commandsAsked = true;
          this.host.postMessage({ type: 'listCommands' });
        }
        return;
      }
      const q = context.query.toLowerCase();
      const options = this.commands
        .filter((c) => c.name.toLowerCase().startsWith(q))
        .concat(this.commands.filter((c) => !c.name.toLowerCase().startsWith(q) && c.name.toLowerCase().includes(q)))
        .slice(0, 50)
        .map((c) => ({
          label: `/${c.name}${c.argumentHint ? ` ${c.argumentHint}` : ''}`,
          detail: c.description ?? '',
          insert: `/${c.name} `,
        }));
      this.openCompletion({ ...context, options, selected: 0 });
      return;
    }
    this.cancelFileQuery?.();
    this.fileQuery = context.query;
    const query = context.query;
    this.cancelFileQuery = this.debounce(() => this.host.postMessage({ type: 'findFiles', query }), 150);
  }

  private showFiles(query: string, paths: string[]): void {
    const context = this.completionContext();
    if (context?.kind !== 'file' || context.query !== query) return;
    const options = paths.map((p) => ({ label: p, detail: '', insert: `@${p} ` }));
    this.openCompletion({ ...context, options, selected: 0 });
  }

  private openCompletion(completion: Completion): void {
    if (completion.options.length === 0) {
      this.closeCompletion();
      return;
    }
    this.completion = completion;
    this.completionList.hidden = false;
    this.completionList.replaceChildren(
      ...completion.options.map((option, index) => {
        const li = this.el('li', `completion${index === completion.selected ? ' selected' : ''}`);
        li.id = `completion-${index}`;
        li.setAttribute('role', 'option');
        li.setAttribute('aria-selected', index === completion.selected ? 'true' : 'false');
        li.append(this.el('span', 'completion-label', option.label));
        if (option.detail !== '') li.append(this.el('span', 'completion-detail', option.detail));
        li.addEventListener('mousedown', (event) => {
          event.preventDefault();
          this.acceptCompletion(index);
        });
        return li;
      }),
    );
    this.input.setAttribute('aria-activedescendant', `completion-${completion.selected}`);
    this.input.setAttribute('aria-expanded', 'true');
  }

  private closeCompletion(): void {
    this.completion = undefined;
    this.completionList.hidden = true;
    this.completionList.replaceChildren();
    this.input.removeAttribute('aria-activedescendant');
    this.input.setAttribute('aria-expanded', 'false');
  }

  private acceptCompletion(index: number): void {
    const c = this.completion;
    const option = c?.options[index];
    if (c === undefined || option === undefined) return;
    const value = this.input.value;
    this.input.value = value.slice(0, c.start) + option.insert + value.slice(c.end);
    const caret = c.start + option.insert.length;
    this.input.setSelectionRange(caret, caret);
    this.closeCompletion();
    this.input.focus();
  }

  /** Arrows, Enter, Tab and Escape while suggestions show; true when the key was theirs. */
  private completionKey(event: KeyboardEvent): boolean {
    const c = this.completion;
    if (c === undefined) return false;
    const move = (by: number): void => {
      this.openCompletion({ ...c, selected: (c.selected + by + c.options.length) % c.options.length });
    };
    switch (event.key) {
      case 'ArrowDown':
        move(1);
        break;
      case 'ArrowUp':
        move(-1);
        break;
      case 'Enter':
      case 'Tab':
        if (event.shiftKey) return false;
        this.acceptCompletion(c.selected);
        break;
      case 'Escape':
        this.closeCompletion();
        break;
      default:
        return false;
    }
    event.preventDefault();
    return true;
  }

  private setSessions(sessions: SessionSummary[], activeSessionId: string | undefined): void {
    this.activeSessionId = activeSessionId;
    const options = sessions.map((s) => {
      const option = this.doc.createElement('option');
      option.value = s.id;
      option.textContent = `${s.title}${s.busy ? ' (working)' : ''}${s.resumed ? ' (resumed)' : ''}`;
      option.selected = s.id === activeSessionId;
      return option;
    });
    if (options.length === 0) {
      // Not an empty dropdown: say there is nothing yet.
      const none = this.option('', 'No sessions yet');
      none.disabled = true;
      none.selected = true;
      options.push(none);
    }
    this.sessionSelect.replaceChildren(...options);
    if (activeSessionId !== undefined) this.sessionSelect.value = activeSessionId;
    this.deleteButton.disabled = activeSessionId === undefined;
  }

  private setBusy(busy: boolean): void {
    // A hidden button drops the focus to the page: keep it in the message box.
    const active = this.doc.activeElement;
    const dropping = !busy && (active === this.stopButton || active === this.queueButton);
    this.busy = busy;
    if (!busy) this.setStatus(this.statusLine.textContent ?? '');
    this.sendButton.hidden = busy;
    this.queueButton.hidden = !busy;
    this.stopButton.hidden = !busy;
    this.stopButton.disabled = !busy;
    this.transcript.setAttribute('aria-busy', busy ? 'true' : 'false');
    if (dropping) this.input.focus();
    if (!busy) {
      this.flush();
      // An error that ended the turn is seen, as an answer is.
      const last = [...this.items.values()].at(-1);
      if (last?.kind === 'error') this.reveal(last.id);
    }
  }

  /** Stop (the button, or Escape): the answer stops and the focus goes to the message box. */
  private stop(): void {
    if (this.busy) this.host.postMessage({ type: 'stop' });
    this.input.focus();
  }

  /**
   * The status line. A `retrying` status counts down to the retry, every
   * second: "Retrying in 8 s (attempt 2 of 10): API Error 500"; Stop stays.
   */
  private setStatus(text: string, retry?: RetryInfo): void {
    this.stopCountdown?.();
    this.stopCountdown = undefined;
    this.statusLine.classList.toggle('retrying', retry !== undefined);
    if (retry === undefined) {
      this.statusLine.textContent = text;
      return;
    }
    const due = this.now() + retry.retryInMs;
    const tick = (): void => {
      const left = due - this.now();
      this.statusLine.textContent = retryText(retry, left);
      if (left <= 0) {
        this.stopCountdown?.();
        this.stopCountdown = undefined;
      }
    };
    tick();
    if (retry.retryInMs > 0) this.stopCountdown = this.every(tick, 1000);
  }

  private setChips(chips: ContextChip[]): void {
    this.chips = chips;
    this.chipList.hidden = chips.length === 0;
    this.chipList.replaceChildren(
      ...chips.map((chip) => {
        const row = this.el('div', 'chip');
        row.setAttribute('role', 'listitem');
        row.title = `${chip.path}, lines ${chip.startLine}-${chip.endLine}: goes with the next message`;
        row.append(this.el('span', 'chip-label', chip.label));
        const remove = this.el('button', 'remove-chip secondary', '×');
        remove.type = 'button';
        remove.setAttribute('aria-label', `Remove ${chip.label} from the next message`);
        remove.addEventListener('click', () => {
          this.host.postMessage({ type: 'removeContext', id: chip.id });
          this.input.focus();
        });
        row.append(remove);
        return row;
      }),
    );
  }

  /** With no items, what Dave is and how to start, instead of an empty transcript. */
  private renderWelcome(): void {
    this.transcript.querySelector(':scope > .welcome')?.remove();
    if (this.items.size > 0) return;
    const box = this.el('div', 'welcome');
    const backend = this.welcome?.backend === 'openai' ? 'an OpenAI-compatible model' : 'Claude Code';
    const model = this.welcome?.model ? `, model ${this.welcome.model}` : ", the backend's default model";
    box.append(
      this.el('div', 'welcome-title', 'Dave'),
      this.el('p', undefined, `Chat with ${backend}${model}, through the dave-lsp server. Dave asks before it changes anything.`),
      this.el(
        'p',
        undefined,
        'Type a question below. @ attaches a file, / lists commands, and "Ask Dave About Selection" (editor context menu) adds the selected code. Ctrl+Alt+D comes back here.',
      ),
    );
    this.transcript.prepend(box);
  }

  /** A new permission card, question or plan must be seen: it waits for the user. */
  private revealIfAsking(item: ChatItem): void {
    if ((item.kind === 'permission' && item.state === 'pending') || item.kind === 'error') this.reveal(item.id);
  }

  private reveal(id: string): void {
    const node = this.nodes.get(id);
    if (node !== undefined && typeof node.scrollIntoView === 'function') node.scrollIntoView({ block: 'nearest' });
  }

  /**
   * Sends the box's text and images. While Dave answers, Enter keeps them (so a
   * half-typed message is not sent by accident); `queue` (the Queue button,
   * Ctrl+Enter) sends them to wait for the running answer.
   */
  private send(queue = false): void {
    const text = this.input.value;
    if ((this.busy && !queue) || (text.trim() === '' && this.chips.length === 0)) return;
    this.input.value = '';
    this.sentJustNow = !this.busy;
    this.closeCompletion();
    const message: FromWebview = { type: 'send', text };
    if (this.images.length > 0) {
      message.attachments = this.images.map((i) => i.attachment);
      this.images = [];
      this.renderImages();
    }
    this.host.postMessage(message);
  }

  private upsert(item: ChatItem): void {
    const previous = this.items.get(item.id);
    if (
      item.kind === 'permission' &&
      item.state === 'pending' &&
      this.answered.has(item.requestId) &&
      previous?.kind === 'permission'
    ) {
      // Answered here already: keep the closed card until the request resolves.
      item = { ...item, state: 'answered', outcome: previous.outcome };
    }
    this.items.set(item.id, { ...item });
    let node = this.nodes.get(item.id);
    if (node === undefined) {
      node = this.doc.createElement('div');
      node.dataset.id = item.id;
      this.nodes.set(item.id, node);
      this.parentOf(item).appendChild(node);
      if (this.items.size === 1) this.renderWelcome();
    }
    this.dirty.delete(item.id);
    this.fill(node, this.items.get(item.id)!);
  }

  /** Where an item's node goes: a subagent's tool row under its Agent row, else the transcript. */
  private parentOf(item: ChatItem): HTMLElement {
    if (item.kind !== 'tool' || item.parentToolUseId === undefined) return this.transcript;
    const parent = [...this.items.values()].find((i) => i.kind === 'tool' && i.toolUseId === item.parentToolUseId);
    const node = parent === undefined ? undefined : this.nodes.get(parent.id);
    if (node === undefined) return this.transcript;
    let children = node.querySelector<HTMLElement>(':scope > .tool-children');
    if (children === null) {
      children = this.el('div', 'tool-children');
      children.setAttribute('role', 'group');
      children.setAttribute('aria-label', 'Subagent tool uses');
      node.append(children);
    }
    return children;
  }

  private markDirty(id: string): void {
    this.dirty.add(id);
    if (!this.renderScheduled) {
      this.renderScheduled = true;
      this.schedule(() => this.flush());
    }
  }

  /** Keeps the transcript pinned to the bottom when it already was (or `always`, for what was just sent). */
  private followBottom(change: () => void, always = false): void {
    const t = this.transcript;
    const atBottom = t.scrollHeight - t.scrollTop - t.clientHeight < 40;
    change();
    if (atBottom || always) t.scrollTop = t.scrollHeight;
  }

  private el<K extends keyof HTMLElementTagNameMap>(tag: K, className?: string, text?: string): HTMLElementTagNameMap[K] {
    const e = this.doc.createElement(tag);
    if (className !== undefined) e.className = className;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  private fill(node: HTMLElement, item: ChatItem): void {
    node.className = `item ${item.kind}`;
    switch (item.kind) {
      case 'user': {
        const parts = [this.el('div', 'who', 'You')];
        if (item.context !== undefined && item.context.length > 0) {
          const context = this.el('div', 'user-context');
          context.setAttribute('aria-label', 'Context sent with it');
          context.append(...item.context.map((label) => this.el('span', 'chip', label)));
          parts.push(context);
        }
        parts.push(this.el('div', 'body plain', item.text));
        if (item.images !== undefined && item.images > 0) {
          parts.push(this.el('div', 'user-images', item.images === 1 ? '1 image attached' : `${item.images} images attached`));
        }
        node.replaceChildren(...parts);
        break;
      }
      case 'assistant': {
        const body = this.el('div', 'body markdown');
        body.innerHTML = this.markdown.render(item.text);
        if (!item.streaming) this.addCodeActions(body);
        node.replaceChildren(this.el('div', 'who', 'Dave'), body);
        node.setAttribute('aria-busy', item.streaming ? 'true' : 'false');
        break;
      }
      case 'thinking': {
        const details = this.el('details');
        details.append(this.el('summary', undefined, 'Thinking'), this.el('div', 'body plain', item.text));
        const wasOpen = node.querySelector('details')?.open ?? false;
        details.open = wasOpen;
        node.replaceChildren(details);
        break;
      }
      case 'tool': {
        const state = !item.done ? 'running' : item.isError ? 'failed' : 'done';
        node.classList.add(state);
        const row = this.el('div', 'tool-row');
        let summary: HTMLElement = this.el('span', 'tool-summary', item.summary);
        if (item.filePath !== undefined) {
          // "Write b.txt (11 bytes)": the summary opens the file.
          const file = item.filePath;
          summary = this.el('button', 'tool-summary tool-open link', item.summary || file);
          (summary as HTMLButtonElement).type = 'button';
          summary.title = `Open ${file}`;
          summary.addEventListener('click', () => this.host.postMessage({ type: 'openFile', path: file }));
        }
        row.append(
          this.el('span', 'tool-name', item.toolName),
          summary,
          this.el('span', 'tool-state', state === 'running' ? 'running' : state === 'failed' ? 'failed' : ''),
        );
        // A subagent's rows stay nested under this one.
        const children = node.querySelector(':scope > .tool-children');
        node.replaceChildren(...(children !== null ? [row, children] : [row]));
        break;
      }
      case 'permission':
        this.fillPermission(node, item);
        break;
      case 'error':
        node.replaceChildren(this.el('span', 'error-label', 'Error: '), this.el('span', 'error-message', item.message));
        break;
      case 'notice':
        node.replaceChildren(this.el('span', undefined, item.text));
        break;
      case 'changes':
        this.fillChanges(node, item);
        break;
    }
  }

  /** Copy, Insert at cursor and Apply on every code block of an answer. */
  private addCodeActions(body: HTMLElement): void {
    for (const pre of body.querySelectorAll('pre')) {
      const code = pre.querySelector('code')?.textContent ?? pre.textContent ?? '';
      const bar = this.el('div', 'code-actions');
      const copy = this.el('button', 'copy-code secondary', 'Copy');
      copy.title = 'Copy the code to the clipboard';
      const insert = this.el('button', 'insert-code secondary', 'Insert');
      insert.title = 'Insert the code at the cursor of the editor';
      insert.setAttribute('aria-label', 'Insert at cursor');
      const apply = this.el('button', 'apply-code secondary', 'Apply');
      apply.title = 'Apply the code to its file, or to the selection of the editor, after you review it in a diff editor';
      for (const b of [copy, insert, apply]) b.type = 'button';
      const info = pre.getAttribute('data-info') ?? '';
      copy.addEventListener('click', () => this.host.postMessage({ type: 'copyCode', code }));
      insert.addEventListener('click', () => this.host.postMessage({ type: 'insertCode', code }));
      apply.addEventListener('click', () =>
        this.host.postMessage(info === '' ? { type: 'applyCode', code } : { type: 'applyCode', code, info }),
      );
      bar.append(copy, insert, apply);
      const block = this.el('div', 'code-block');
      pre.replaceWith(block);
      block.append(bar, pre);
    }
  }

  /** "N files changed", its files, Review and Undo (all, or one file). */
  private fillChanges(node: HTMLElement, item: Extract<ChatItem, { kind: 'changes' }>): void {
    node.setAttribute('role', 'group');
    const headline = changesHeadline(item);
    node.setAttribute('aria-label', headline);
    const head = this.el('div', 'changes-head');
    const open = item.files.filter((f) => f.reverted !== true);
    const review = this.el('button', 'review secondary', 'Review');
    review.type = 'button';
    review.title = 'Open the diffs of this turn';
    review.addEventListener('click', () => this.host.postMessage({ type: 'reviewChanges', itemId: item.id }));
    const undo = this.el('button', 'undo secondary', 'Undo');
    undo.type = 'button';
    undo.title = 'Restore every file as it was before this turn';
    undo.disabled = open.length === 0;
    undo.addEventListener('click', () => this.host.postMessage({ type: 'undoChanges', itemId: item.id }));
    head.append(this.el('span', 'changes-title', headline), review, undo);
    const list = this.el('ul', 'changes-files');
    for (const file of item.files) {
      const row = this.el('li', `changes-file ${file.status}${file.reverted === true ? ' reverted' : ''}`);
      const counts = file.binary === true ? 'binary' : `+${file.added} −${file.removed}`;
      row.append(
        this.el('span', 'changes-path', file.label),
        this.el('span', 'changes-status', file.status),
        this.el('span', 'changes-counts', counts),
      );
      if (file.reverted === true) {
        row.append(this.el('span', 'changes-state', 'undone'));
      } else {
        const one = this.el('button', 'undo-file secondary', 'Undo');
        one.type = 'button';
        one.setAttribute('aria-label', `Undo ${file.label}`);
        one.title = `Restore ${file.label} as it was before this turn`;
        one.addEventListener('click', () => this.host.postMessage({ type: 'undoChanges', itemId: item.id, path: file.path }));
        row.append(one);
      }
      if (file.conflict !== undefined) row.append(this.el('div', 'changes-conflict', file.conflict));
      list.append(row);
    }
    const children: HTMLElement[] = [head, list];
    if (item.note !== undefined && item.note !== '') children.push(this.el('div', 'changes-note', item.note));
    node.replaceChildren(...children);
  }

  private fillPermission(node: HTMLElement, item: Extract<ChatItem, { kind: 'permission' }>): void {
    if (item.questions !== undefined) {
      this.fillQuestions(node, item, item.questions);
      return;
    }
    if (item.plan !== undefined) {
      this.fillPlan(node, item, item.plan);
      return;
    }
    node.setAttribute('role', 'group');
    node.setAttribute('aria-label', `Permission request: ${item.toolName}`);
    const children: HTMLElement[] = [this.el('div', 'permission-message', item.message)];
    if (item.detail !== '') children.push(this.el('pre', 'permission-detail', item.detail));
    const pending = item.state === 'pending' && !this.answered.has(item.requestId);
    const review = item.review;
    if (pending && review !== undefined) {
      const line = this.el('div', 'permission-review', review.note);
      if (review.viewable) {
        const show = this.el('button', 'show-diff secondary', 'Show diff');
        show.type = 'button';
        show.title = `Open the diff of ${review.file}`;
        show.addEventListener('click', () => this.host.postMessage({ type: 'openProposal', requestId: item.requestId }));
        line.append(' ', show);
      }
      children.push(line);
    }
    const offer = item.allowAlways;
    if (pending && offer !== undefined) {
      // Say exactly what "Allow always" allows before it is chosen.
      const line = this.el('div', 'permission-rule', 'Allow always adds the rule ');
      line.append(this.el('code', undefined, offer.rule), ' for this session.');
      children.push(line);
    }
    if (pending) {
      const buttons = this.el('div', 'permission-buttons');
      const reason = this.el('input', 'permission-reason');
      reason.type = 'text';
      reason.setAttribute('aria-label', 'Reason for denying');
      reason.placeholder = 'Reason for Deny (optional)';
      reason.title = 'Optional: why you deny it; the model is told';
      const allow = this.el('button', 'allow', 'Allow');
      if (review?.editable === true) allow.title = 'Accept the right side of the diff editor, with your edits';
      const always = this.el(
        'button',
        'allow-always secondary',
        offer !== undefined && offer.label !== '' ? `Allow always: ${offer.label}` : 'Allow always',
      );
      if (offer !== undefined) always.title = `Adds the rule ${offer.rule} for this session`;
      const deny = this.el('button', 'deny secondary', 'Deny');
      for (const b of [allow, always, deny]) b.type = 'button';
      allow.addEventListener('click', () => this.answer(item.requestId, 'allow', node));
      always.addEventListener('click', () => this.answer(item.requestId, 'allowAlways', node));
      deny.addEventListener('click', () => this.answer(item.requestId, 'deny', node, reason.value));
      reason.addEventListener('keydown', (event) => {
        if (event.key === 'Enter') {
          event.preventDefault();
          this.answer(item.requestId, 'deny', node, reason.value);
        }
      });
      buttons.append(allow, always, deny);
      children.push(buttons, reason);
    } else {
      children.push(this.el('div', 'permission-outcome', permissionOutcomeText(item)));
    }
    node.replaceChildren(...children);
  }

  /**
   * The model's questions (AskUserQuestion): each question's header and text, its
   * options as buttons (one pick answers a single question at once) or, for
   * multiSelect, checkboxes, and a field for the user's own words; Submit sends
   * them all, Decline denies.
   */
  private fillQuestions(node: HTMLElement, item: Extract<ChatItem, { kind: 'permission' }>, questions: NonNullable<typeof item.questions>): void {
    node.setAttribute('role', 'group');
    node.setAttribute('aria-label', 'Dave asks');
    node.classList.add('question-card');
    const pending = item.state === 'pending' && !this.answered.has(item.requestId);
    const children: HTMLElement[] = [];
    const chosen = new Map<string, string>();
    const readers: Array<() => [string, string | string[]] | undefined> = [];
    const single = questions.length === 1 && questions[0]?.multiSelect !== true;
    const submit = (): void => {
      const answers: Record<string, string | string[]> = {};
      for (const read of readers) {
        const pair = read();
        if (pair !== undefined) answers[pair[0]] = pair[1];
      }
      this.answer(item.requestId, 'allow', node, undefined, { answers });
    };
    questions.forEach((q, qi) => {
      const box = this.el('fieldset', 'question');
      const legend = this.el('legend', 'question-text');
      if (q.header !== undefined) legend.append(this.el('span', 'question-header', q.header), ' ');
      legend.append(q.question);
      box.append(legend);
      if (!pending) {
        children.push(box);
        return;
      }
      const options = q.options ?? [];
      const checks: HTMLInputElement[] = [];
      const list = this.el('div', 'question-options');
      options.forEach((option, oi) => {
        if (q.multiSelect === true) {
          const label = this.el('label', 'question-check');
          const check = this.el('input');
          check.type = 'checkbox';
          check.value = option.label;
          check.id = `${item.id}-q${qi}-o${oi}`;
          checks.push(check);
          label.append(check, ` ${option.label}`);
          if (option.description) label.append(this.el('span', 'option-description', ` — ${option.description}`));
          list.append(label);
        } else {
          const button = this.el('button', 'question-option secondary', option.label);
          button.type = 'button';
          if (option.description) button.title = option.description;
          button.setAttribute('aria-pressed', 'false');
          button.addEventListener('click', () => {
            chosen.set(q.question, option.label);
            for (const b of list.querySelectorAll('button')) b.setAttribute('aria-pressed', b === button ? 'true' : 'false');
            if (single) submit();
          });
          list.append(button);
          if (option.description) list.append(this.el('span', 'option-description', option.description));
        }
      });
      const own = this.el('input', 'question-own');
      own.type = 'text';
      own.setAttribute('aria-label', `Your own answer to: ${q.question}`);
      own.placeholder = 'Or type your own answer';
      own.addEventListener('keydown', (event) => {
        if (event.key === 'Enter') {
          event.preventDefault();
          submit();
        }
      });
      box.append(list, own);
      readers.push(() => {
        const typed = own.value.trim();
        if (typed !== '') return [q.question, typed];
        if (q.multiSelect === true) {
          const picked = checks.filter((c) => c.checked).map((c) => c.value);
          return picked.length > 0 ? [q.question, picked] : undefined;
        }
        const pick = chosen.get(q.question);
        return pick === undefined ? undefined : [q.question, pick];
      });
      children.push(box);
    });
    if (pending) {
      const buttons = this.el('div', 'permission-buttons');
      const send = this.el('button', 'submit-answers', 'Submit');
      const decline = this.el('button', 'decline secondary', 'Decline');
      for (const b of [send, decline]) b.type = 'button';
      send.addEventListener('click', submit);
      decline.addEventListener('click', () => this.answer(item.requestId, 'deny', node));
      buttons.append(send, decline);
      children.push(buttons);
    } else {
      children.push(this.el('div', 'permission-outcome', permissionOutcomeText(item)));
    }
    node.replaceChildren(...children);
  }

  /** A plan (ExitPlanMode) as markdown: Approve, Approve and accept edits, or Keep planning with feedback. */
  private fillPlan(node: HTMLElement, item: Extract<ChatItem, { kind: 'permission' }>, plan: string): void {
    node.setAttribute('role', 'group');
    node.setAttribute('aria-label', "Dave's plan");
    node.classList.add('plan-card');
    const pending = item.state === 'pending' && !this.answered.has(item.requestId);
    const body = this.el('div', 'plan-body markdown');
    body.innerHTML = this.markdown.render(plan.trim() === '' ? '_The model sent no plan text._' : plan);
    const children: HTMLElement[] = [this.el('div', 'permission-message', 'Dave wants to leave plan mode with this plan:'), body];
    if (pending) {
      const buttons = this.el('div', 'permission-buttons');
      const approve = this.el('button', 'approve', 'Approve');
      const edits = this.el('button', 'approve-edits secondary', 'Approve and accept edits');
      edits.title = 'Approve, and let Dave edit files without asking (permission mode acceptEdits)';
      const keep = this.el('button', 'keep-planning secondary', 'Keep planning');
      for (const b of [approve, edits, keep]) b.type = 'button';
      const feedback = this.el('input', 'plan-feedback');
      feedback.type = 'text';
      feedback.setAttribute('aria-label', 'Feedback on the plan');
      feedback.placeholder = 'Feedback (optional)';
      feedback.title = 'Optional: what to plan differently; the model is told with Keep planning';
      approve.addEventListener('click', () => this.answer(item.requestId, 'allow', node));
      edits.addEventListener('click', () => this.answer(item.requestId, 'allow', node, undefined, { permissionMode: 'acceptEdits' }));
      const back = (): void => this.answer(item.requestId, 'deny', node, feedback.value);
      keep.addEventListener('click', back);
      feedback.addEventListener('keydown', (event) => {
        if (event.key === 'Enter') {
          event.preventDefault();
          back();
        }
      });
      buttons.append(approve, edits, keep);
      children.push(buttons, feedback);
    } else {
      children.push(this.el('div', 'permission-outcome', permissionOutcomeText(item)));
    }
    node.replaceChildren(...children);
  }

  private answer(
    requestId: string,
    decision: PermissionAnswer,
    node: HTMLElement,
    reason?: string,
    extra: { answers?: Record<string, string | string[]>; permissionMode?: PermissionMode } = {},
  ): void {
    if (this.answered.has(requestId)) return;
    this.answered.add(requestId);
    const message: FromWebview = { type: 'permission', requestId, decision, ...extra };
    if (decision === 'deny' && reason !== undefined && reason.trim() !== '') message.reason = reason.trim();
    this.host.postMessage(message);
    // Close the card at once; the extension's update fills in how it ended.
    for (const b of node.querySelectorAll('button')) b.disabled = true;
    const item = [...this.items.values()].find((i) => i.kind === 'permission' && i.requestId === requestId);
    if (item !== undefined && item.kind === 'permission') {
      item.state = 'answered';
      item.outcome =
        item.questions !== undefined
          ? decision === 'deny' ? 'Declined to answer' : 'Answered'
          : item.plan !== undefined
            ? decision === 'deny' ? 'Kept planning' : 'Approved'
            : decision === 'deny' ? 'Denied' : decision === 'allowAlways' ? 'Allowed always' : 'Allowed';
      this.fill(node, item);
    }
    this.input.focus();
  }
}

export function permissionOutcomeText(item: Extract<ChatItem, { kind: 'permission' }>): string {
  switch (item.state) {
    case 'pending':
    case 'answered':
      return item.outcome ?? 'Answered';
    case 'allowed':
      return item.outcome ?? 'Allowed';
    case 'denied':
      return item.outcome ?? 'Denied';
    case 'expired':
      return item.outcome ?? 'No longer waiting for an answer';
  }
}

export function changesHeadline(item: Extract<ChatItem, { kind: 'changes' }>): string {
  const n = item.files.length;
  return n === 1 ? '1 file changed' : `${n} files changed`;
}

/** "Context 12% of 200k · $0.0123", or "" when nothing is known yet. */
export function meterText(meter: Meter | undefined): string {
  if (meter === undefined) return '';
  const parts: string[] = [];
  const { contextTokens: tokens, contextWindow: window, costUsd } = meter;
  if (tokens !== undefined && window !== undefined && window > 0) {
    parts.push(`Context ${Math.round((tokens / window) * 100)}% of ${compact(window)}`);
  } else if (tokens !== undefined) {
    parts.push(`Context ${compact(tokens)} tokens`);
  }
  if (costUsd !== undefined) parts.push(`$${costUsd < 0.01 ? costUsd.toFixed(4) : costUsd.toFixed(2)}`);
  return parts.join(' · ');
}

function compact(n: number): string {
  if (n >= 1_000_000) return `${Math.round(n / 100_000) / 10}M`;
  if (n >= 1000) return `${Math.round(n / 1000)}k`;
  return String(n);
}

function readAsDataUrl(file: Blob): Promise<string> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(typeof reader.result === 'string' ? reader.result : '');
    reader.onerror = () => reject(reader.error ?? new Error('could not read the image'));
    reader.readAsDataURL(file);
  });
}
