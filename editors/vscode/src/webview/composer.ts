/**
 * The composer: the message box and its buttons (Send; Queue and Stop while
 * Dave answers; Escape stops too), the images pasted or dropped into it, the
 * context chips that go with the next message, and the prompts queued behind
 * the running answer. The `/` and `@` suggestions are the Completion's
 * (completion.ts).
 */

import type { ContextChip, FromWebview, ImageAttachment, QueuedPrompt, SlashCommand } from '../shared/messages';
import { Completion } from './completion';
import { required, type MakeElement, type Post } from './dom';

const IMAGE_TYPES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp']);
const MAX_IMAGE_BYTES = 5 * 1024 * 1024;

export interface ComposerOptions {
  /** Waits before asking for `@` file completions; returns a cancel. */
  debounce: (fn: () => void, ms: number) => () => void;
  /** Reads a pasted or dropped image as a data: URL. */
  readImage: (file: Blob) => Promise<string>;
  /** Shows a line of the composer's own in the status line (an image it cannot take). */
  note: (text: string) => void;
}

export class Composer {
  private busy = false;
  /** Images for the next send: the attachment and its data: URL for the thumbnail. */
  private images: Array<{ attachment: ImageAttachment; url: string }> = [];
  private chips: ContextChip[] = [];
  /** Set by Send: the prompt's bubble scrolls the transcript to the bottom, wherever it was. */
  private sentJustNow = false;
  private readonly input: HTMLTextAreaElement;
  private readonly sendButton: HTMLButtonElement;
  private readonly stopButton: HTMLButtonElement;
  private readonly queueButton: HTMLButtonElement;
  private readonly queueList: HTMLElement;
  private readonly attachmentList: HTMLElement;
  private readonly chipList: HTMLElement;
  private readonly completion: Completion;

  constructor(
    private readonly doc: Document,
    private readonly el: MakeElement,
    private readonly post: Post,
    private readonly options: ComposerOptions,
  ) {
    this.chipList = required(doc, '#chips');
    this.input = required(doc, '#message');
    this.sendButton = required(doc, '#send');
    this.stopButton = required(doc, '#stop');
    const form = required<HTMLFormElement>(doc, '#composer');
    this.queueButton = required(doc, '#queue-send');
    this.queueList = required(doc, '#queue');
    this.attachmentList = required(doc, '#attachments');
    this.completion = new Completion(this.input, required(doc, '#completions'), el, post, options.debounce);

    form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.send();
    });
    this.input.addEventListener('keydown', (event) => {
      if (this.completion.key(event)) return;
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
    this.input.addEventListener('input', () => this.completion.update());
    this.input.addEventListener('blur', () => {
      // A click on a suggestion lands first (mousedown keeps the focus).
      this.completion.close();
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
    form.addEventListener('dragover', (event) => {
      if ([...(event.dataTransfer?.items ?? [])].some((i) => i.kind === 'file')) event.preventDefault();
    });
    form.addEventListener('drop', (event) => {
      const files = [...(event.dataTransfer?.files ?? [])];
      if (files.length > 0) {
        event.preventDefault();
        void this.addImages(files);
      }
    });
    this.queueButton.addEventListener('click', () => this.send(true));
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
  }

  /** Dave answers or not: Send, or Queue and Stop. */
  setBusy(busy: boolean): void {
    // A hidden button drops the focus to the page: keep it in the message box.
    const active = this.doc.activeElement;
    const dropping = !busy && (active === this.stopButton || active === this.queueButton);
    this.busy = busy;
    this.sendButton.hidden = busy;
    this.queueButton.hidden = !busy;
    this.stopButton.hidden = !busy;
    this.stopButton.disabled = !busy;
    if (dropping) this.input.focus();
  }

  /** Focuses the message box, with `text` in it when given. */
  focus(text?: string): void {
    if (text !== undefined) this.input.value = text;
    this.input.focus();
  }

  /** True once after Send, for the sent prompt's bubble. */
  takeSent(): boolean {
    const sent = this.sentJustNow;
    this.sentJustNow = false;
    return sent;
  }

  setCommands(commands: SlashCommand[]): void {
    this.completion.setCommands(commands);
  }

  setFiles(query: string, paths: string[]): void {
    this.completion.setFiles(query, paths);
  }

  setQueue(queued: QueuedPrompt[]): void {
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
        remove.addEventListener('click', () => this.post({ type: 'unqueue', id: q.id }));
        row.append(remove);
        return row;
      }),
    );
  }

  setChips(chips: ContextChip[]): void {
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
          this.post({ type: 'removeContext', id: chip.id });
          this.input.focus();
        });
        row.append(remove);
        return row;
      }),
    );
  }

  /** Stop (the button, or Escape): the answer stops and the focus goes to the message box. */
  private stop(): void {
    if (this.busy) this.post({ type: 'stop' });
    this.input.focus();
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
    this.completion.close();
    const message: FromWebview = { type: 'send', text };
    if (this.images.length > 0) {
      message.attachments = this.images.map((i) => i.attachment);
      this.images = [];
      this.renderImages();
    }
    this.post(message);
  }

  private async addImages(files: readonly File[]): Promise<void> {
    for (const file of files) {
      if (!IMAGE_TYPES.has(file.type)) {
        this.options.note(`Not an image Dave can read: ${file.name || file.type} (PNG, JPEG, GIF or WebP)`);
        continue;
      }
      if (file.size > MAX_IMAGE_BYTES) {
        this.options.note(`${file.name || 'The image'} is over 5 MB`);
        continue;
      }
      const url = await this.options.readImage(file);
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
}

/** Reads an image as a data: URL with a FileReader (the webview's default). */
export function readAsDataUrl(file: Blob): Promise<string> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(typeof reader.result === 'string' ? reader.result : '');
    reader.onerror = () => reject(reader.error ?? new Error('could not read the image'));
    reader.readAsDataURL(file);
  });
}
