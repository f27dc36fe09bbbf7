/**
 * Issue 18 in the chat controller, against the real server and the fake model:
 * a retried model request shows as a counting-down `retrying` status, a
 * failure that needs an environment variable names `dave.server.env`, a
 * context chip added while Dave answers goes with the queued question as its
 * `context` (the bubble shows file and lines), Copy and Insert at cursor of a
 * code block and a file tool's row reach the editor host. The pure parts
 * (titles, a selection ending at column 1, a reload mid-answer) at the end.
 */

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { CHIPS_ONLY_PROMPT, ChatController, STORAGE_KEY } from '../src/chat/chatController';
import { selectionChip } from '../src/chat/promptContext';
import { INTERRUPTED_TEXT, SessionStore, titleFrom } from '../src/chat/sessionStore';
import { envFixText } from '../src/chat/turnReducer';
import type { ChatItem, ToWebview } from '../src/shared/messages';
import {
  fakeModelOptions,
  MemoryStore,
  recordingClient,
  startDave,
  startFakeModel,
  testHost,
  waitFor,
  type DaveUnderTest,
  type FakeModel,
} from './helpers';

const T = { timeout: 120_000 };

type Status = Extract<ToWebview, { type: 'status' }>;

describe('issue 18 with the real server', () => {
  let fake: FakeModel;
  let dave: DaveUnderTest;

  before(async () => {
    fake = await startFakeModel();
    // The CLI retries a failed model request twice (the suite's default is no retries).
    const options = fakeModelOptions(fake.url, '', '');
    dave = await startDave(fake.url, { env: { ...options.env, CLAUDE_CODE_MAX_RETRIES: '2' } });
  }, { timeout: 120_000 });
  after(async () => {
    await dave?.close();
    await fake?.stop();
  });

  it('a retried model request shows "Retrying in N s (attempt a of m)", then the error', T, async () => {
    const { client } = recordingClient(dave.server);
    const h = testHost(client);
    const chat = new ChatController(h);
    const outcome = await chat.send('error 500 still down');
    assert.equal(outcome?.kind, 'failed');
    const retries = h.posted.filter((m): m is Status & { retry: NonNullable<Status['retry']> } => m.type === 'status' && m.retry !== undefined);
    assert.deepEqual(
      retries.map((m) => [m.retry.attempt, m.retry.maxAttempts, m.retry.reason]),
      [
        [1, 2, 'API Error 500'],
        [2, 2, 'API Error 500'],
      ],
    );
    assert.ok(retries.every((m) => m.retry.retryInMs > 0));
    assert.match(retries[0].text, /^Retrying in \d+ s \(attempt 1 of 2\): API Error 500$/);
    // Then the status clears and the error is an item of the transcript.
    assert.equal((h.posted.filter((m) => m.type === 'status').at(-1) as Status).text, '');
    const errors = chat.items(chat.activeSessionId!).filter((i) => i.kind === 'error');
    assert.equal(errors.length, 1);
    assert.match(errors[0].kind === 'error' ? errors[0].message : '', /500/);
  });

  it('a failure that needs ANTHROPIC_API_KEY says to set it in dave.server.env', T, async () => {
    const { client } = recordingClient(dave.server);
    const chat = new ChatController(testHost(client));
    await chat.send('error 401 invalid x-api-key');
    const errors = chat.items(chat.activeSessionId!).filter((i): i is Extract<ChatItem, { kind: 'error' }> => i.kind === 'error');
    assert.equal(errors.length, 1, JSON.stringify(errors));
    assert.match(errors[0].message, /\(set ANTHROPIC_API_KEY in the "dave\.server\.env" setting/);
    assert.doesNotMatch(errors[0].message, /initializationOptions|backend's environment/);
  });

  it('Ask Dave About Selection while Dave answers: the chip waits with the queued question and goes as its context', T, async () => {
    const { client, queries } = recordingClient(dave.server);
    const h = testHost(client, { activeFile: () => ({ path: '/elsewhere.py', languageId: 'python', selection: { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } } }) });
    const chat = new ChatController(h);
    const file = path.join(dave.workspace, 'greet.py');
    writeFileSync(file, 'def greet(name):\n    return name\n\nprint(greet("a"))\n');
    const first = chat.send('slow 15 20');
    await waitFor(() => h.posted.some((m) => m.type === 'busy' && m.busy), 60_000, 'the first turn to run');
    const chip = selectionChip(
      { path: file, label: 'greet.py', languageId: 'python' },
      // Lines 1-2, ending at column 1 of line 3: line 3 is not taken.
      { start: { line: 0, character: 0 }, end: { line: 2, character: 0 } },
      'def greet(name):\n    return name\n',
    )!;
    chat.addContext(chip);
    assert.deepEqual(h.posted.filter((m) => m.type === 'chips').at(-1), { type: 'chips', chips: chat.contextChips() });
    const second = chat.send('hello what does it do?');
    // Nothing is lost: it waits with its chip, and the box's chips are gone with it.
    assert.deepEqual(chat.queued().map((q) => [q.text, q.context]), [['hello what does it do?', ['greet.py:1-2']]]);
    assert.deepEqual(chat.contextChips(), []);
    assert.deepEqual(h.posted.filter((m) => m.type === 'chips').at(-1), { type: 'chips', chips: [] });
    assert.equal((await first)?.kind, 'done');
    assert.equal((await second)?.kind, 'done');
    const sent = queries.at(-1)!;
    assert.equal(sent.prompt, 'hello what does it do?');
    assert.deepEqual(sent.context?.activeFile, {
      path: file,
      languageId: 'python',
      selection: { start: { line: 0, character: 0 }, end: { line: 2, character: 0 } },
      selectedText: 'def greet(name):\n    return name\n',
    });
    // The prompt itself is what was typed: the code went once, as context.
    assert.doesNotMatch(sent.prompt, /def greet/);
    const bubble = chat.items(chat.activeSessionId!).filter((i) => i.kind === 'user').at(-1);
    assert.deepEqual(bubble?.kind === 'user' ? bubble.context : undefined, ['greet.py:1-2']);

    // A chip alone asks to explain the code; × takes a chip out before it goes.
    const removed = chat.addContext(chip);
    await chat.handleMessage({ type: 'removeContext', id: removed.id });
    assert.deepEqual(chat.contextChips(), []);
    chat.addContext(chip);
    await chat.handleMessage({ type: 'send', text: '   ' });
    assert.equal(queries.at(-1)?.prompt, CHIPS_ONLY_PROMPT);
    assert.equal(queries.at(-1)?.context?.activeFile?.path, file);
  });

  it("Copy and Insert at cursor reach the editor with the block's code, and a file tool's row opens its file", T, async () => {
    const { client } = recordingClient(dave.server);
    const copied: string[] = [];
    const inserted: string[] = [];
    const opened: string[] = [];
    const h = testHost(client, {
      cwd: dave.workspace,
      copyText: (text) => {
        copied.push(text);
        return Promise.resolve();
      },
      insertText: (text) => {
        inserted.push(text);
        return Promise.resolve(inserted.length > 1 ? 'open a file to insert it into' : undefined);
      },
      openFile: (file) => {
        opened.push(file);
        return Promise.resolve();
      },
    });
    const chat = new ChatController(h);
    await chat.handleMessage({ type: 'copyCode', code: 'def a():\n    return 1' });
    await chat.handleMessage({ type: 'insertCode', code: 'x = 1' });
    await chat.handleMessage({ type: 'insertCode', code: 'y = 2' });
    assert.deepEqual(copied, ['def a():\n    return 1']);
    assert.deepEqual(inserted, ['x = 1', 'y = 2']);
    assert.deepEqual(
      h.posted.filter((m): m is Status => m.type === 'status').map((m) => m.text),
      ['Copied the code to the clipboard.', 'Inserted the code at the cursor.', 'Could not insert the code: open a file to insert it into'],
    );

    const target = path.join(dave.workspace, 'notes.txt');
    writeFileSync(target, 'one\ntwo\n');
    await chat.send(`tool Read ${JSON.stringify({ file_path: target })}`);
    const row = chat.items(chat.activeSessionId!).find((i): i is Extract<ChatItem, { kind: 'tool' }> => i.kind === 'tool');
    assert.equal(row?.filePath, target);
    await chat.handleMessage({ type: 'openFile', path: row.filePath });
    await chat.handleMessage({ type: 'openFile', path: 'notes.txt' });
    assert.deepEqual(opened, [target, target]);
  });
});

describe('titles, selections and a reload mid-answer', () => {
  it('session titles are plain text, without markdown', () => {
    assert.equal(titleFrom('# Fix the **parser** in `src/a.py`'), 'Fix the parser in src/a.py');
    assert.equal(titleFrom('```python\nprint(1)\n```'), 'print(1)');
    assert.equal(titleFrom('- see [the docs](https://x.y/z) and _this_'), 'see the docs and this');
    assert.equal(titleFrom('   \n'), 'New session');
  });

  it('a selection that ends at column 1 does not take the next line; none is none', () => {
    const file = { path: '/w/a.py', label: 'a.py', languageId: 'python' };
    const at = (l1: number, c1: number, l2: number, c2: number) => ({ start: { line: l1, character: c1 }, end: { line: l2, character: c2 } });
    assert.equal(selectionChip(file, at(4, 0, 6, 0), 'a\nb\n')?.label, 'a.py:5-6');
    assert.equal(selectionChip(file, at(4, 2, 4, 9), 'abcdefg')?.label, 'a.py:5');
    assert.equal(selectionChip(file, at(4, 0, 5, 3), 'a\nbcd')?.label, 'a.py:5-6');
    assert.equal(selectionChip(file, at(4, 0, 4, 0), ''), undefined);
  });

  it('an answer cut off by a window reload is marked interrupted', () => {
    const store = new MemoryStore();
    const items: ChatItem[] = [
      { id: 'u1', kind: 'user', text: 'slow 600 50' },
      { id: 'a1', kind: 'assistant', text: 'tok tok', streaming: true },
    ];
    store.data.set(STORAGE_KEY, { activeSessionId: 's1', sessions: [{ id: 's1', title: 'x', createdAt: 1, items, history: [] }] });
    const reloaded = new SessionStore(store).get('s1')!;
    assert.deepEqual(
      reloaded.items.map((i) => [i.kind, i.kind === 'assistant' ? i.streaming : i.kind === 'notice' ? i.text : '']),
      [
        ['user', ''],
        ['assistant', false],
        ['notice', INTERRUPTED_TEXT],
      ],
    );
    // A finished answer is not.
    store.data.set(STORAGE_KEY, { sessions: [{ id: 's2', title: 'y', createdAt: 1, items: [{ ...items[1], streaming: false }], history: [] }] });
    assert.equal(new SessionStore(store).get('s2')!.items.length, 1);
  });

  it("a needsEnv failure's text words the fix in VS Code's setting", () => {
    assert.equal(
      envFixText("Claude Code: Invalid API key (set ANTHROPIC_API_KEY in the backend's environment)", 'ANTHROPIC_API_KEY'),
      'Claude Code: Invalid API key (set ANTHROPIC_API_KEY in the "dave.server.env" setting; Dave then offers to restart the server)',
    );
  });
});
