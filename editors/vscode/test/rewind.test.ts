/**
 * Rewind and fork from a message (issue 27), ChatController against the real
 * server and the fake model: "Rewind to here" restores the file the rewound
 * turn wrote, takes the message and what followed off the transcript, shows
 * the card with the restored file and its Review, puts the message back in the
 * box, and the chat goes on from there; "Rewind chat only" leaves the files;
 * "Fork from here" opens a session holding the turns up to the message (the
 * server lists it as forked), the original kept; neither runs while a turn does.
 */

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';

import { ChatController, type ChangePick, type ChangesUi } from '../src/chat/chatController';
import type { ChangedFile } from '../src/protocol/changeTypes';
import type { ChatItem, RewindItem } from '../src/shared/messages';
import { recordingClient, serverForSuite, testHost, waitFor, type RecordingClient, type TestHost } from './helpers';

const T = { timeout: 180_000 };

class StubChangesUi implements ChangesUi {
  shown: Array<{ title: string; files: ChangedFile[] }> = [];
  warnings: string[] = [];
  show(title: string, files: ChangedFile[]): Promise<void> {
    this.shown.push({ title, files: structuredClone(files) });
    return Promise.resolve();
  }
  pick<P extends ChangePick>(): Promise<P | undefined> {
    return Promise.resolve(undefined);
  }
  warn(message: string): void {
    this.warnings.push(message);
  }
  info(): void {}
}

describe('rewind and fork with the real server', () => {
  const suite = serverForSuite();

  function rig(): { chat: ChatController; h: TestHost; ui: StubChangesUi; rec: RecordingClient } {
    const rec = recordingClient(suite.dave.server);
    const ui = new StubChangesUi();
    const h = testHost(rec.client, { cwd: suite.dave.workspace, changesUi: ui });
    return { chat: new ChatController(h), h, ui, rec };
  }
  const items = (chat: ChatController): ChatItem[] => chat.items(chat.activeSessionId!);
  const users = (chat: ChatController): Array<Extract<ChatItem, { kind: 'user' }>> =>
    items(chat).filter((i): i is Extract<ChatItem, { kind: 'user' }> => i.kind === 'user');

  it('Rewind to here restores the file, drops the turn from the chat, and the chat goes on', T, async () => {
    const { chat, h, ui, rec } = rig();
    const file = path.join(suite.dave.workspace, 'rewound.txt');
    await chat.setPermissionMode('acceptEdits');
    assert.equal((await chat.send('write rewound.txt one'))?.kind, 'done');
    const second = `steps ${JSON.stringify([
      ['Read', { file_path: file }],
      ['Write', { file_path: file, content: 'two' }],
    ])}`;
    assert.equal((await chat.send(second))?.kind, 'done');
    assert.equal(readFileSync(file, 'utf8'), 'two');
    await waitFor(() => items(chat).filter((i) => i.kind === 'changes' && i.turn !== undefined).length === 2, 10_000, 'both rows to learn their turns');

    const [first, rewound] = users(chat);
    await chat.handleMessage({ type: 'rewind', itemId: rewound.id, files: true });
    assert.equal(readFileSync(file, 'utf8'), 'one', 'the file is as turn 1 left it');
    assert.deepEqual(users(chat).map((u) => u.text), ['write rewound.txt one'], 'the rewound message left the transcript');
    const card = items(chat).at(-1) as RewindItem;
    assert.deepEqual(
      { kind: card.kind, turn: card.turn, files: card.files, prompt: card.prompt, rows: card.rows },
      { kind: 'rewind', turn: 2, files: true, prompt: second, rows: [{ path: file, label: 'rewound.txt' }] },
    );
    assert.deepEqual(h.posted.filter((m) => m.type === 'focusInput').at(-1), { type: 'focusInput', text: second });
    assert.deepEqual(chat.history(chat.activeSessionId!).map((m) => m.role), ['user', 'assistant']);
    assert.equal(first.id, users(chat)[0].id);

    // Review: what the rewind undid (what turn 2 left, against the file now).
    await chat.handleMessage({ type: 'reviewRewind', itemId: card.id, path: file });
    assert.deepEqual(ui.shown.map((s) => s.files.map((f) => [f.path, f.before, f.after])), [[[file, 'two', 'one']]]);

    // The chat goes on from turn 1, and sends no transcript: the server has it.
    assert.equal((await chat.send('after the rewind'))?.kind, 'done');
    assert.deepEqual(rec.queries.at(-1)?.messages, []);

    // The conversation only: the file stays.
    await chat.rewind(users(chat)[0].id, false);
    assert.equal(readFileSync(file, 'utf8'), 'one');
    const chatOnly = items(chat).at(-1) as RewindItem;
    assert.deepEqual([chatOnly.turn, chatOnly.files, chatOnly.rows], [1, false, []]);
    assert.equal(users(chat).length, 0);
    assert.deepEqual(ui.warnings, []);
  });

  it('Rewind to here on a message that failed drops it from the chat; the server had no turn of it', T, async () => {
    const { chat, rec } = rig();
    assert.equal((await chat.send('hello before'))?.kind, 'done');
    assert.equal((await chat.send('error 500 rewind-this-failure'))?.kind, 'failed');
    const asked = rec.queries.length;
    const result = await chat.rewind(users(chat)[1].id);
    assert.deepEqual(result, { turn: 2, restored: [], conflicts: [] });
    assert.deepEqual(users(chat).map((u) => u.text), ['hello before']);
    assert.equal(items(chat).some((i) => i.kind === 'error'), false, 'the error went with its message');
    assert.equal((await chat.send('hello after'))?.kind, 'done');
    assert.equal(rec.queries.length, asked + 1);
    const listed = (await rec.client.listSessions())?.sessions.find((s) => s.sessionId === chat.activeSessionId);
    assert.equal(listed?.turns, 2);
  });

  it('a file you changed since is kept: the card names it with the server\'s message, and a warning says so', T, async () => {
    const { chat, ui } = rig();
    const file = path.join(suite.dave.workspace, 'kept.txt');
    await chat.setPermissionMode('acceptEdits');
    assert.equal((await chat.send('write kept.txt dave'))?.kind, 'done');
    await waitFor(() => items(chat).some((i) => i.kind === 'changes' && i.turn !== undefined), 10_000, 'the row to learn its turn');
    writeFileSync(file, 'mine');
    const result = await chat.rewind(users(chat)[0].id);
    assert.deepEqual(result?.restored, []);
    assert.equal(readFileSync(file, 'utf8'), 'mine', 'never overwritten');
    const card = items(chat).at(-1) as RewindItem;
    assert.equal(card.rows.length, 1);
    assert.equal(card.rows[0].label, 'kept.txt');
    assert.ok((card.rows[0].conflict ?? '') !== '', JSON.stringify(card.rows));
    assert.equal(ui.warnings.length, 1);
    assert.match(ui.warnings[0], /^Dave rewound the conversation but kept a file that changed since: kept\.txt: /);
    // Review: everything since before the turn (Dave's and yours) against the file now.
    await chat.handleMessage({ type: 'reviewRewind', itemId: card.id, path: file });
    assert.deepEqual(ui.shown.map((s) => s.files.map((f) => [f.before, f.after])), [[[null, 'dave']]]);
  });

  it('Fork from here opens a session holding the turns up to the message; the original stays', T, async () => {
    const { chat, rec } = rig();
    assert.equal((await chat.send('hello one'))?.kind, 'done');
    assert.equal((await chat.send('hello two'))?.kind, 'done');
    const original = chat.activeSessionId!;
    const forked = await chat.fork(users(chat)[0].id);
    assert.ok(forked !== undefined && forked !== original, String(forked));
    assert.equal(chat.activeSessionId, forked);
    assert.deepEqual(users(chat).map((u) => u.text), ['hello one']);
    assert.match((items(chat).at(-1) as { text: string }).text, /^Forked from "hello one" at turn 1/);
    assert.deepEqual(chat.viewState().sessions.map((s) => [s.id, s.title]), [
      [original, 'hello one'],
      [forked, 'hello one (fork)'],
    ]);
    assert.deepEqual(chat.items(original).filter((i) => i.kind === 'user').length, 2, 'the original keeps both turns');
    const listed = (await rec.client.listSessions())?.sessions.find((s) => s.sessionId === forked);
    assert.deepEqual(listed?.forkedFrom, { sessionId: original, turn: 1 });
    const history = await rec.client.history(forked);
    assert.deepEqual(history?.entries.filter((e) => e.role === 'user').map((e) => e.text), ['hello one'], 'the server shows the fork as it is');

    assert.equal((await chat.send('hello three'))?.kind, 'done');
    assert.deepEqual(rec.queries.at(-1)?.messages, [], 'the server holds the fork');
    assert.equal(chat.activeSessionId, forked);

    // Not while a turn runs: the status line says why, in one line.
    const slow = chat.send('slow 600 50');
    await waitFor(() => chat.viewState().busy, 30_000, 'the slow turn to start');
    await chat.handleMessage({ type: 'rewind', itemId: users(chat)[0].id, files: true });
    assert.equal(chat.viewState().status, "Stop Dave's answer first: a session cannot rewind while a turn runs.");
    chat.stop();
    assert.equal((await slow)?.kind, 'cancelled');
    assert.equal(users(chat).length, 3, 'nothing was rewound');
  });
});
