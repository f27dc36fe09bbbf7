/**
 * What goes with a prompt besides its text (issues 15 and 18): the message
 * box's context chips (Ask Dave About Selection puts a selection there; × takes
 * it out; the next prompt, sent or queued, takes them all), and the prompt's
 * `context` for dave/query: the first chip as the active file with its exact
 * text, further chips as line mentions, else the active editor; then the
 * prompt's @mentions that are files.
 */

import { statSync } from 'node:fs';
import * as path from 'node:path';

import type { ActiveFileContext, Mention, QueryContext } from '../protocol/editorTypes';
import type { ContextChip } from '../shared/messages';
import { parseMentions } from './mentions';

/** The chips in the message box, in the order they were added; `changed` posts them. */
export class ContextChips {
  private chips: ContextChip[] = [];
  private counter = 0;

  constructor(private readonly changed: (chips: ContextChip[]) => void) {}

  list(): ContextChip[] {
    return this.chips.map((c) => ({ ...c, selection: { start: { ...c.selection.start }, end: { ...c.selection.end } } }));
  }

  add(chip: Omit<ContextChip, 'id'>): ContextChip {
    this.counter += 1;
    const added = { ...chip, id: `c${Date.now().toString(36)}-${this.counter}` };
    this.chips.push(added);
    this.changed(this.list());
    return { ...added };
  }

  /** False when there is no such chip (any more). */
  remove(id: string): boolean {
    const before = this.chips.length;
    this.chips = this.chips.filter((c) => c.id !== id);
    this.changed(this.list());
    return this.chips.length < before;
  }

  /** Takes every chip for the prompt being sent. */
  take(): ContextChip[] {
    const taken = this.chips;
    if (taken.length === 0) return [];
    this.chips = [];
    this.changed([]);
    return taken;
  }
}

/**
 * `context` of a prompt. A slash command goes to the CLI as typed: none.
 * `activeFile` is read only when there is no chip (the setting may turn it off).
 */
export function promptContext(
  prompt: string,
  chips: readonly ContextChip[],
  activeFile: (() => ActiveFileContext | undefined) | undefined,
  cwd: string | undefined,
): QueryContext | undefined {
  if (prompt.startsWith('/')) return undefined;
  const [first, ...more] = chips;
  const active: ActiveFileContext | undefined =
    first !== undefined
      ? { path: first.path, languageId: first.languageId, selection: first.selection, selectedText: first.text }
      : activeFile?.();
  const mentions: Mention[] = [
    ...more.map((c) => ({ path: c.path, startLine: c.startLine, endLine: c.endLine })),
    ...parseMentions(prompt).filter((m) => isFile(m.path, cwd)),
  ];
  if (active === undefined && mentions.length === 0) return undefined;
  return { ...(active !== undefined ? { activeFile: active } : {}), ...(mentions.length > 0 ? { mentions } : {}) };
}

function isFile(file: string, cwd: string | undefined): boolean {
  const absolute = path.isAbsolute(file) ? file : cwd === undefined ? undefined : path.join(cwd, file);
  if (absolute === undefined) return false;
  try {
    return statSync(absolute).isFile();
  } catch {
    return false;
  }
}

/**
 * A selection as a chip: "greet.py:1-2". A selection that ends at column 1 of
 * a later line ends on the line before (the caret after a line's newline does
 * not take the next line); an empty one is none (the caller says so).
 */
export function selectionChip(
  file: { path: string; label: string; languageId: string },
  selection: { start: { line: number; character: number }; end: { line: number; character: number } },
  text: string,
): Omit<ContextChip, 'id'> | undefined {
  if (text === '') return undefined;
  const startLine = selection.start.line + 1;
  const endsAtLineStart = selection.end.character === 0 && selection.end.line > selection.start.line;
  const endLine = endsAtLineStart ? selection.end.line : selection.end.line + 1;
  const lines = startLine === endLine ? `${startLine}` : `${startLine}-${endLine}`;
  return {
    label: `${file.label}:${lines}`,
    path: file.path,
    languageId: file.languageId,
    startLine,
    endLine,
    selection: { start: { ...selection.start }, end: { ...selection.end } },
    text,
  };
}
