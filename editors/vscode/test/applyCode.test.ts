/**
 * A code block's Apply (issue 18, src/chat/applyCode.ts), without VS Code: the
 * target rules (a file named by the fence or a first-line comment, else the
 * last active editor's selection, else its whole file only when the block
 * looks like it), the diff it opens (a stub ProposalView stands in for VS
 * Code's diff editor; the files are real, in a temporary folder), Accept
 * writing exactly the right side as edited, Reject writing nothing, and a file
 * changed since the diff opened never overwritten.
 */

import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';

import {
  CodeApplier,
  commentFileName,
  fenceFileName,
  looksLikeWholeFile,
  planApply,
  type ApplyHost,
  type EditorSnapshot,
} from '../src/chat/applyCode';
import { runCodeAction } from '../src/chat/codeActions';
import type { ProposalDocument, ProposalView } from '../src/chat/review';
import { parseFromWebview } from '../src/shared/messages';
import { tempDir } from './helpers';

/** The diff editor: records what it shows; `texts` is the right side as the user left it. */
class StubView implements ProposalView {
  opened: ProposalDocument[] = [];
  closed: string[] = [];
  texts = new Map<string, string>();

  open(document: ProposalDocument): Promise<void> {
    this.opened.push(structuredClone(document));
    if (document.proposed !== undefined) this.texts.set(document.requestId, document.proposed);
    return Promise.resolve();
  }
  close(requestId: string): Promise<void> {
    this.closed.push(requestId);
    this.texts.delete(requestId);
    return Promise.resolve();
  }
  text(requestId: string): string | undefined {
    return this.texts.get(requestId);
  }
}

/** A workspace folder on disk and an editor on one of its files. */
function workspace(files: Record<string, string>): {
  dir: string;
  view: StubView;
  host: ApplyHost;
  writes: string[];
  editor: { file?: string; selection?: [string] };
} {
  const dir = tempDir('apply');
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
  const view = new StubView();
  const writes: string[] = [];
  const editor: { file?: string; selection?: [string] } = {};
  const read = (file: string): string | undefined => (existsSync(file) ? readFileSync(file, 'utf8') : undefined);
  const host: ApplyHost = {
    view,
    lastEditor(): EditorSnapshot | undefined {
      if (editor.file === undefined) return undefined;
      const file = path.join(dir, editor.file);
      const text = read(file)!;
      const selected = editor.selection?.[0];
      const start = selected === undefined ? -1 : text.indexOf(selected);
      return {
        path: file,
        label: editor.file,
        text,
        ...(start >= 0 ? { selection: { start, end: start + selected!.length } } : {}),
      };
    },
    resolve(name) {
      const file = path.resolve(dir, name);
      const label = path.relative(dir, file);
      return label.startsWith('..') ? `${name} is not a file inside the workspace folder` : { path: file, label };
    },
    read: (file) => Promise.resolve(read(file)),
    write(file, text) {
      writes.push(file);
      writeFileSync(file, text);
      return Promise.resolve();
    },
  };
  return { dir, view, host, writes, editor };
}

const GREET = 'def greet(name):\n    return f"hi {name}"\n\n\nprint(greet("a"))\n';

describe('what a code block names', () => {
  it('a fence names its file by title=, file=, lang:path or a lone path, never by a language', () => {
    assert.equal(fenceFileName('python title=greet.py'), 'greet.py');
    assert.equal(fenceFileName('python title="src/greet.py"'), 'src/greet.py');
    assert.equal(fenceFileName('ts file=src/a.ts'), 'src/a.ts');
    assert.equal(fenceFileName('python:greet.py'), 'greet.py');
    assert.equal(fenceFileName('greet.py'), 'greet.py');
    assert.equal(fenceFileName('src/Makefile'), 'src/Makefile');
    for (const info of ['python', 'c++', 'objective-c', '', undefined, 'python {1,3}']) assert.equal(fenceFileName(info), undefined, String(info));
  });

  it('a first line that is only a comment with a path names a file', () => {
    assert.equal(commentFileName('# greet.py\ndef greet(): ...'), 'greet.py');
    assert.equal(commentFileName('// src/a.ts\nexport {}'), 'src/a.ts');
    assert.equal(commentFileName('<!-- page.html -->\n<p>'), 'page.html');
    assert.equal(commentFileName('# file: greet.py\n'), 'greet.py');
    assert.equal(commentFileName('# a comment about greet.py\nx = 1'), undefined);
    assert.equal(commentFileName('# TODO\nx = 1'), undefined);
    assert.equal(commentFileName('x = 1'), undefined);
  });

  it('a block is the whole file when the file is blank or the block has at least half its lines', () => {
    assert.equal(looksLikeWholeFile('x = 1', ''), true);
    assert.equal(looksLikeWholeFile('a\nb', 'a\nb\nc\nd\n'), true);
    assert.equal(looksLikeWholeFile('a', 'a\nb\nc\n'), false);
  });
});

describe('what Apply replaces', () => {
  const editor = (text: string, selected?: string): EditorSnapshot => {
    const start = selected === undefined ? -1 : text.indexOf(selected);
    return { path: '/w/greet.py', label: 'greet.py', text, ...(start >= 0 ? { selection: { start, end: start + selected!.length } } : {}) };
  };

  it("the editor's selection, keeping the line break it had or had not", () => {
    const lines = planApply('return 2\n', undefined, editor('def f():\n    return 1\n', 'return 1'));
    assert.deepEqual(typeof lines === 'string' ? lines : [lines.how, lines.proposed], ['selection', 'def f():\n    return 2\n']);
    const whole = planApply('    return 2', undefined, editor('def f():\n    return 1\nx\n', '    return 1\n'));
    assert.equal(typeof whole === 'string' ? whole : whole.proposed, 'def f():\n    return 2\nx\n');
  });

  it('the whole file when the block looks like it, else it says what to select', () => {
    const whole = planApply('def greet(name):\n    return "hello"\n\nprint(greet("a"))', undefined, editor(GREET));
    assert.deepEqual(typeof whole === 'string' ? whole : [whole.how, whole.original, whole.proposed], [
      'whole',
      GREET,
      'def greet(name):\n    return "hello"\n\nprint(greet("a"))\n',
    ]);
    assert.equal(
      planApply('x = 1', undefined, editor(GREET)),
      'the block is shorter than half of greet.py: select the lines in greet.py that it replaces, then Apply again',
    );
    const nothing = planApply('x = 1', undefined, undefined);
    assert.match(typeof nothing === 'string' ? nothing : 'a plan', /^open the file it belongs in/);
  });

  it('a named file that is not there yet is a new file; a named file open with a selection takes the selection', () => {
    const created = planApply('x = 1', { path: '/w/new.py', label: 'new.py', text: undefined }, editor(GREET));
    assert.deepEqual(typeof created === 'string' ? created : [created.how, created.exists, created.proposed], ['new', false, 'x = 1\n']);
    const named = planApply('"hey"', { path: '/w/greet.py', label: 'greet.py', text: GREET }, editor(GREET, '"a"'));
    assert.equal(typeof named === 'string' ? named : named.proposed, GREET.replace('"a"', '"hey"'));
  });
});

describe('Apply: the diff, Accept and Reject', () => {
  it('a fence-named file opens its diff; Accept writes exactly the right side as the user edited it', async () => {
    const w = workspace({ 'greet.py': GREET, 'other.py': 'y = 2\n' });
    w.editor.file = 'other.py';
    const applier = new CodeApplier(w.host);
    const code = 'def greet(name):\n    return f"hello {name}"\n\n\nprint(greet("a"))';
    const note = await applier.apply({ code, info: 'python title=greet.py' });
    assert.equal(note, 'Review the change to greet.py in the diff editor: Accept (✓) or Reject (✗) in its title bar.');
    assert.equal(w.view.opened.length, 1);
    const shown = w.view.opened[0];
    assert.deepEqual([shown.path, shown.title, shown.original, shown.proposed], [
      path.join(w.dir, 'greet.py'),
      "greet.py (Apply Dave's code)",
      GREET,
      `${code}\n`,
    ]);
    assert.equal(w.writes.length, 0, 'nothing is written before Accept');
    // The user edits the right side before accepting.
    const edited = `${code}\nprint(greet("b"))\n`;
    w.view.texts.set(shown.requestId, edited);
    assert.equal(applier.has(shown.requestId), true);
    const result = await applier.accept(shown.requestId);
    assert.deepEqual(result, { written: true, message: 'Applied the code to greet.py with your edits.' });
    assert.equal(readFileSync(path.join(w.dir, 'greet.py'), 'utf8'), edited);
    assert.equal(readFileSync(path.join(w.dir, 'other.py'), 'utf8'), 'y = 2\n');
    assert.deepEqual(w.view.closed, [shown.requestId]);
    assert.equal(applier.has(shown.requestId), false);
    assert.equal((await applier.accept(shown.requestId)).written, false, 'answered once');
  });

  it('Reject closes the diff and writes nothing', async () => {
    const w = workspace({ 'greet.py': GREET });
    w.editor.file = 'greet.py';
    w.editor.selection = ['"a"'];
    const applier = new CodeApplier(w.host);
    assert.match(await applier.apply({ code: '"z"' }), /^Review the change to the selection of greet\.py/);
    const id = w.view.opened[0].requestId;
    assert.equal(w.view.opened[0].proposed, GREET.replace('"a"', '"z"'));
    assert.equal(await applier.reject(id), 'Not applied: greet.py is unchanged.');
    assert.deepEqual(w.view.closed, [id]);
    assert.deepEqual(w.writes, []);
    assert.equal(readFileSync(path.join(w.dir, 'greet.py'), 'utf8'), GREET);
    assert.equal((await applier.accept(id)).written, false);
    assert.deepEqual(w.writes, []);
  });

  it('never overwrites a file that changed since the diff opened, nor one that appeared since', async () => {
    const w = workspace({ 'greet.py': GREET });
    w.editor.file = 'greet.py';
    const applier = new CodeApplier(w.host);
    await applier.apply({ code: GREET.replace('hi', 'hello') });
    const id = w.view.opened[0].requestId;
    const theirs = `${GREET}# the user's line\n`;
    writeFileSync(path.join(w.dir, 'greet.py'), theirs);
    const result = await applier.accept(id);
    assert.deepEqual(result, {
      written: false,
      message:
        'greet.py changed since the diff opened: nothing was written. Reject this diff and Apply the block again to compare it with the file as it is now.',
    });
    assert.equal(readFileSync(path.join(w.dir, 'greet.py'), 'utf8'), theirs);
    assert.deepEqual(w.writes, []);
    assert.deepEqual(w.view.closed, [], 'the diff stays open with the edits');
    assert.equal(applier.has(id), true);

    await applier.apply({ code: 'x = 1', info: 'new.py' });
    const created = w.view.opened[1];
    assert.deepEqual([created.exists, created.original, created.proposed], [false, '', 'x = 1\n']);
    writeFileSync(path.join(w.dir, 'new.py'), 'mine\n');
    assert.equal((await applier.accept(created.requestId)).written, false);
    assert.equal(readFileSync(path.join(w.dir, 'new.py'), 'utf8'), 'mine\n');
  });

  it('a first-line comment names an existing file and is not applied; naming no file, it is code', async () => {
    const w = workspace({ 'greet.py': GREET, 'other.py': 'y = 2\n' });
    w.editor.file = 'other.py';
    const applier = new CodeApplier(w.host);
    const code = 'def greet(name):\n    return name\n\nprint(greet("a"))\n';
    assert.match(await applier.apply({ code: `# greet.py\n${code}` }), /^Review the change to greet\.py/);
    assert.deepEqual([w.view.opened[0].path, w.view.opened[0].proposed], [path.join(w.dir, 'greet.py'), code]);
    await applier.apply({ code: '# missing.py\nz = 3' });
    assert.deepEqual([w.view.opened[1].path, w.view.opened[1].proposed], [path.join(w.dir, 'other.py'), '# missing.py\nz = 3\n']);
  });

  it('says what to do instead: outside the workspace, a snippet with nothing selected, nothing open, no change', async () => {
    const w = workspace({ 'greet.py': GREET });
    const applier = new CodeApplier(w.host);
    assert.equal(
      await applier.apply({ code: 'x', info: 'sh title=../../etc/profile' }),
      'Could not apply the code: ../../etc/profile is not a file inside the workspace folder',
    );
    assert.match(await applier.apply({ code: 'x = 1' }), /^Could not apply the code: open the file it belongs in/);
    w.editor.file = 'greet.py';
    assert.match(await applier.apply({ code: 'x = 1' }), /select the lines in greet\.py that it replaces, then Apply again$/);
    assert.equal(await applier.apply({ code: GREET }), 'greet.py already holds this code: nothing to apply.');
    assert.equal(w.view.opened.length, 0);
    assert.deepEqual(w.writes, []);
  });

  it('the webview message reaches Apply with its info string, validated', async () => {
    const parsed = parseFromWebview({ type: 'applyCode', code: 'x = 1', info: ' python title=a.py ' });
    assert.deepEqual(parsed, { type: 'applyCode', code: 'x = 1', info: 'python title=a.py' });
    assert.deepEqual(parseFromWebview({ type: 'applyCode', code: 'x = 1', info: 7 }), { type: 'applyCode', code: 'x = 1' });
    assert.equal(parseFromWebview({ type: 'applyCode' }), undefined);
    const seen: Array<[string, string | undefined]> = [];
    const note = await runCodeAction(
      { applyCode: (code, info) => (seen.push([code, info]), Promise.resolve('opened')) },
      { type: 'applyCode', code: 'x = 1', info: 'python title=a.py' },
    );
    assert.equal(note, 'opened');
    assert.deepEqual(seen, [['x = 1', 'python title=a.py']]);
    assert.equal(await runCodeAction({}, { type: 'applyCode', code: 'x' }), 'Could not apply the code: there is no editor here');
  });
});
