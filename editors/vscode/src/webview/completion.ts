/**
 * The message box's suggestions: `/` at the start lists the slash commands
 * (asked of the extension once, `listCommands`), `@` after a space lists the
 * workspace's files (`findFiles`, debounced). Arrows move, Enter or Tab
 * accepts, Escape closes; a click on a suggestion accepts it.
 */

import type { SlashCommand } from '../shared/messages';
import type { MakeElement, Post } from './dom';

/** The suggestions on show. */
interface Suggestions {
  kind: 'command' | 'file';
  /** Where the completed word starts in the input, and what it replaces up to the caret. */
  start: number;
  end: number;
  query: string;
  options: Array<{ label: string; detail: string; insert: string }>;
  selected: number;
}

export class Completion {
  private commands: SlashCommand[] | undefined;
  private commandsAsked = false;
  private open: Suggestions | undefined;
  private cancelFileQuery: (() => void) | undefined;
  private fileQuery: string | undefined;

  constructor(
    private readonly input: HTMLTextAreaElement,
    private readonly list: HTMLElement,
    private readonly el: MakeElement,
    private readonly post: Post,
    /** Waits before asking for `@` file completions; returns a cancel. */
    private readonly debounce: (fn: () => void, ms: number) => () => void,
  ) {}

  /** The extension's slash commands (`commands`). */
  setCommands(commands: SlashCommand[]): void {
    this.commands = commands;
    this.update();
  }

  /** The extension's files for an `@` query (`files`); an answer to an older query is dropped. */
  setFiles(query: string, paths: string[]): void {
    if (query !== this.fileQuery) return;
    const context = this.context();
    if (context?.kind !== 'file' || context.query !== query) return;
    const options = paths.map((p) => ({ label: p, detail: '', insert: `@${p} ` }));
    this.show({ ...context, options, selected: 0 });
  }

  /** What the text before the caret asks for, after every change of the input. */
  update(): void {
    const context = this.context();
    if (context === undefined) {
      this.close();
      return;
    }
    if (context.kind === 'command') {
      if (this.commands === undefined) {
        if (!this.commandsAsked) {
          this.commandsAsked = true;
          this.post({ type: 'listCommands' });
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
      this.show({ ...context, options, selected: 0 });
      return;
    }
    this.cancelFileQuery?.();
    this.fileQuery = context.query;
    const query = context.query;
    this.cancelFileQuery = this.debounce(() => this.post({ type: 'findFiles', query }), 150);
  }

  close(): void {
    this.open = undefined;
    this.list.hidden = true;
    this.list.replaceChildren();
    this.input.removeAttribute('aria-activedescendant');
    this.input.setAttribute('aria-expanded', 'false');
  }

  /** Arrows, Enter, Tab and Escape while suggestions show; true when the key was theirs. */
  key(event: KeyboardEvent): boolean {
    const c = this.open;
    if (c === undefined) return false;
    const move = (by: number): void => {
      this.show({ ...c, selected: (c.selected + by + c.options.length) % c.options.length });
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
        this.accept(c.selected);
        break;
      case 'Escape':
        this.close();
        break;
      default:
        return false;
    }
    event.preventDefault();
    return true;
  }

  /** What the text before the caret asks to complete, if anything. */
  private context(): { kind: 'command' | 'file'; start: number; end: number; query: string } | undefined {
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

  private show(suggestions: Suggestions): void {
    if (suggestions.options.length === 0) {
      this.close();
      return;
    }
    this.open = suggestions;
    this.list.hidden = false;
    this.list.replaceChildren(
      ...suggestions.options.map((option, index) => {
        const li = this.el('li', `completion${index === suggestions.selected ? ' selected' : ''}`);
        li.id = `completion-${index}`;
        li.setAttribute('role', 'option');
        li.setAttribute('aria-selected', index === suggestions.selected ? 'true' : 'false');
        li.append(this.el('span', 'completion-label', option.label));
        if (option.detail !== '') li.append(this.el('span', 'completion-detail', option.detail));
        li.addEventListener('mousedown', (event) => {
          event.preventDefault();
          this.accept(index);
        });
        return li;
      }),
    );
    this.input.setAttribute('aria-activedescendant', `completion-${suggestions.selected}`);
    this.input.setAttribute('aria-expanded', 'true');
  }

  private accept(index: number): void {
    const c = this.open;
    const option = c?.options[index];
    if (c === undefined || option === undefined) return;
    const value = this.input.value;
    this.input.value = value.slice(0, c.start) + option.insert + value.slice(c.end);
    const caret = c.start + option.insert.length;
    this.input.setSelectionRange(caret, caret);
    this.close();
    this.input.focus();
  }
}
