/**
 * A code block's Apply (issue 18): the block as a reviewed edit of a file,
 * without `vscode`. It decides what the block replaces (the target rules
 * below), shows the whole file before and after in the same diff editor as a
 * permission's proposal (a ProposalView, review.ts), and writes only on
 * Accept: exactly the right side as it is then, and never over a file that
 * changed since the diff opened.
 *
 * The target rules, in order:
 * 1. A file named by the block: its fence info string (```python title=greet.py,
 *    ```python file=greet.py, ```python:greet.py or ```greet.py), else a first
 *    line that is only a comment naming a path that exists in the workspace
 *    (`# greet.py`, `// src/a.ts`, `<!-- page.html -->`; that line is a label
 *    and is not applied). Paths are relative to the workspace folder and must
 *    lie inside it.
 * 2. Else the editor the user last had active.
 * In the target, the block replaces the selection when the target is that
 * editor and something is selected; else the whole file, but only when the
 * file does not exist yet, is blank, or the block has at least half as many
 * lines as the file (shorter, it is a snippet: the user is told to select the
 * lines it replaces).
 */

import * as path from 'node:path';

import { errorMessage } from '../protocol/errors';
import { sameLines, type ProposalView } from './review';

/** What the webview sends: the block's code and its fence's info string. */
export interface CodeBlock {
  code: string;
  info?: string;
}

/** The editor the user last had active, as the host read it. */
export interface EditorSnapshot {
  /** Absolute path of its file. */
  path: string;
  /** Relative to the workspace. */
  label: string;
  /** Its text now, unsaved edits included. */
  text: string;
  /** The primary selection as offsets into `text`, when it is not empty. */
  selection?: { start: number; end: number };
}

/** A file that the block names, once resolved and read. */
export interface NamedFile {
  path: string;
  label: string;
  /** Undefined: it does not exist yet. */
  text: string | undefined;
}

/** What Apply would change: the whole file before and after. */
export interface ApplyPlan {
  path: string;
  label: string;
  /** The file existed when the diff opened (`original` is its text then). */
  exists: boolean;
  original: string;
  proposed: string;
  how: 'selection' | 'whole' | 'new';
}

export interface ApplyHost {
  /** The diff editor of proposals (vscodeReview.ts in VS Code). */
  view: ProposalView;
  /** The last active editor on a file (never one of Dave's diff editors). */
  lastEditor(): EditorSnapshot | undefined;
  /** A path a block names: absolute and relative to the workspace, or a problem (outside it, no folder). */
  resolve(name: string): { path: string; label: string } | string;
  /** The file's text now (an open editor's, unsaved edits included); undefined when it does not exist. */
  read(file: string): Promise<string | undefined>;
  /** Writes exactly `text` as the file's content (creating it). */
  write(file: string, text: string): Promise<void>;
}

const QUOTED = /^(["'])(.*)\1$/;

/** The file a fence's info string names: `title=`, `file=`, `filename=`, `path=`, `lang:path`, or a lone path. */
export function fenceFileName(info: string | undefined): string | undefined {
  const words = (info ?? '').trim().split(/\s+/).filter((w) => w !== '');
  for (const word of words) {
    const match = /^(?:title|file|filename|path)=(.+)$/i.exec(word);
    if (match !== null) return unquote(match[1]);
  }
  const first = words[0];
  if (first === undefined) return undefined;
  const colon = /^[\w+#-]+:(.+)$/.exec(first);
  if (colon !== null && looksLikePath(colon[1])) return colon[1];
  return words.length === 1 && looksLikePath(first) ? first : undefined;
}

function unquote(text: string): string | undefined {
  const bare = QUOTED.exec(text)?.[2] ?? text;
  return bare === '' ? undefined : bare;
}

/** A file name with an extension, or a path with a slash: not a language name like `c++`. */
function looksLikePath(word: string): boolean {
  return /^[\w./@~-]+$/.test(word) && (/\.[A-Za-z0-9]+$/.test(word) || (word.includes('/') && !word.endsWith('/')));
}

const COMMENT_NAME =
  /^\s*(?:#|\/\/|--|;|%|\/\*|<!--)\s*(?:(?:file(?:name)?|path)\s*:\s*)?([\w./@~-]+)\s*(?:\*\/|-->)?\s*$/i;

/** The path a block's first line names when it is only a comment with a path (`# greet.py`). */
export function commentFileName(code: string): string | undefined {
  const first = code.split('\n', 1)[0] ?? '';
  const name = COMMENT_NAME.exec(first.replace(/\r$/, ''))?.[1];
  return name !== undefined && looksLikePath(name) ? name : undefined;
}

/** The block without its first line (the comment that named its file). */
function withoutFirstLine(code: string): string {
  const newline = code.indexOf('\n');
  return newline < 0 ? '' : code.slice(newline + 1);
}

function lineCount(text: string): number {
  const body = text.replace(/\r?\n$/, '');
  return body === '' ? 0 : body.split('\n').length;
}

/** The rule for "the block is the whole file": the file is blank, or the block has at least half its lines. */
export function looksLikeWholeFile(code: string, file: string): boolean {
  if (file.trim() === '') return true;
  return lineCount(code) * 2 >= lineCount(file);
}

/** The block's code ending as what it replaces ends: with a line break or without. */
function endedLike(code: string, replaced: string): string {
  const bare = code.replace(/\r?\n$/, '');
  return replaced.endsWith('\n') ? `${bare}\n` : bare;
}

/** What Apply changes, or the problem to tell the user (the target rules in the module's docstring). */
export function planApply(code: string, named: NamedFile | undefined, editor: EditorSnapshot | undefined): ApplyPlan | string {
  const target: NamedFile | undefined = named ?? editor;
  if (target === undefined) {
    return 'open the file it belongs in (and select the lines it replaces, if it is a part), then Apply again';
  }
  const { path: file, label } = target;
  if (editor !== undefined && editor.path === file && editor.selection !== undefined) {
    const { start, end } = editor.selection;
    const text = editor.text;
    const proposed = text.slice(0, start) + endedLike(code, text.slice(start, end)) + text.slice(end);
    return { path: file, label, exists: true, original: text, proposed, how: 'selection' };
  }
  if (target.text === undefined) {
    return { path: file, label, exists: false, original: '', proposed: endedLike(code, '\n'), how: 'new' };
  }
  if (looksLikeWholeFile(code, target.text)) {
    return { path: file, label, exists: true, original: target.text, proposed: endedLike(code, target.text), how: 'whole' };
  }
  return `the block is shorter than half of ${label}: select the lines in ${label} that it replaces, then Apply again`;
}

/** The code blocks being applied: each is a diff editor waiting for Accept or Reject. */
export class CodeApplier {
  private readonly pending = new Map<string, ApplyPlan>();
  private count = 0;

  constructor(private readonly host: ApplyHost) {}

  /** Opens the block's change in the diff editor; the line for the status line. */
  async apply(block: CodeBlock): Promise<string> {
    try {
      const named = await this.namedFile(block);
      if (typeof named === 'string') return `Could not apply the code: ${named}`;
      const code = named?.code ?? block.code;
      const plan = planApply(code, named?.file, this.host.lastEditor());
      if (typeof plan === 'string') return `Could not apply the code: ${plan}`;
      if (plan.exists && sameLines(plan.proposed, plan.original)) return `${plan.label} already holds this code: nothing to apply.`;
      this.count += 1;
      // Not a server request id: those come from the server, these never leave the extension.
      const id = `dave-apply-${this.count}`;
      this.pending.set(id, plan);
      await this.host.view.open({
        requestId: id,
        path: plan.path,
        title: `${path.basename(plan.path)} (Apply Dave's code)`,
        exists: plan.exists,
        original: plan.original,
        proposed: plan.proposed,
        diff: '',
        binary: false,
      });
      const what = plan.how === 'selection' ? 'the selection of ' : plan.how === 'new' ? 'the new file ' : '';
      return `Review the change to ${what}${plan.label} in the diff editor: Accept (✓) or Reject (✗) in its title bar.`;
    } catch (error) {
      return `Could not apply the code: ${errorMessage(error)}`;
    }
  }

  /** Whether `id` is an Apply waiting for its answer (the diff editor's Accept and Reject ask). */
  has(id: string): boolean {
    return this.pending.has(id);
  }

  /**
   * Writes the right side, edits included, unless the file changed since the
   * diff opened; then nothing is written and the diff stays open.
   */
  async accept(id: string): Promise<{ written: boolean; message: string }> {
    const plan = this.pending.get(id);
    if (plan === undefined) return { written: false, message: 'This Apply was answered already.' };
    const text = this.host.view.text(id) ?? plan.proposed;
    try {
      const now = await this.host.read(plan.path);
      const changed = plan.exists ? now !== plan.original : now !== undefined;
      if (changed) {
        return {
          written: false,
          message: `${plan.label} changed since the diff opened: nothing was written. Reject this diff and Apply the block again to compare it with the file as it is now.`,
        };
      }
      await this.host.write(plan.path, text);
    } catch (error) {
      return { written: false, message: `Could not write ${plan.label}: ${errorMessage(error)}` };
    }
    this.pending.delete(id);
    await this.host.view.close(id);
    const edited = sameLines(text, plan.proposed) ? '' : ' with your edits';
    return { written: true, message: `Applied the code to ${plan.label}${edited}.` };
  }

  /** Closes the diff; nothing is written. */
  async reject(id: string): Promise<string> {
    const plan = this.pending.get(id);
    if (plan === undefined) return 'This Apply was answered already.';
    this.pending.delete(id);
    await this.host.view.close(id);
    return `Not applied: ${plan.label} is unchanged.`;
  }

  /** The file the block names (fence first, then a first-line comment naming an existing file). */
  private async namedFile(block: CodeBlock): Promise<{ file: NamedFile; code: string } | string | undefined> {
    const fence = fenceFileName(block.info);
    if (fence !== undefined) {
      const where = this.host.resolve(fence);
      if (typeof where === 'string') return where;
      return { file: { ...where, text: await this.host.read(where.path) }, code: block.code };
    }
    const comment = commentFileName(block.code);
    if (comment === undefined) return undefined;
    const where = this.host.resolve(comment);
    if (typeof where === 'string') return undefined;
    const text = await this.host.read(where.path);
    // A comment naming a file that is not there is just a comment.
    return text === undefined ? undefined : { file: { ...where, text }, code: withoutFirstLine(block.code) };
  }
}
