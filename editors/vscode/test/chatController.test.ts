/**
 * ChatController, the chat's state behind the view, against the real server:
 * what the view is sent while a turn streams, permission cards answered from
 * the view, Stop, persistence across a reload, and the transcript resent when
 * the server no longer has the conversation.
 */

import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';

import { ChatController, STORAGE_KEY } from '../src/chat/chatController';
import { manageRules, NO_RULES, type RulePick } from '../src/chat/rules';
import type { DaveClient } from '../src/protocol/daveClient';
import { ServerStartError } from '../src/protocol/server';
import type { ChatItem, PermissionAnswer, ToWebview } from '../src/shared/messages';
import { MemoryStore, recordingClient, serverForSuite, startDave, testHost, waitFor, type TestHost } from './helpers';

const T = { timeout: 120_000 };

/** The suite's host: `store` shared across controllers stands in for a window reload. */
function host(client: () => Promise<DaveClient>, store = new MemoryStore()): TestHost {
  return testHost(client, { store });
}

function itemsOf(controller: ChatController): ChatItem[] {
  return controller.items(controller.activeSessionId!);
}

describe('ChatController with the real server', () => {
  const suite = serverForSuite();

  it('streams a turn into the view and records the transcript', T, async () => {
    const h = host(() => Promise.resolve(suite.dave.server.client));
    const chat = new ChatController(h);
    await chat.handleMessage({ type: 'ready' });
    const outcome = await chat.send('hello view');
    assert.equal(outcome?.kind, 'done');

    const appended = h.posted.filter((m): m is Extract<ToWebview, { type: 'append' }> => m.type === 'append');
    assert.deepEqual(appended[0]?.item, { ...appended[0].item, kind: 'user', text: 'hello view' });
    const assistant = appended.find((m) => m.item.kind === 'assistant')!.item;
    const streamed =
      (assistant as { text: string }).text +
      h.posted
        .filter((m): m is Extract<ToWebview, { type: 'appendText' }> => m.type === 'appendText' && m.itemId === assistant.id)
        .map((m) => m.text)
        .join('');
    assert.equal(streamed, 'You said: hello view');
    assert.ok(h.posted.some((m) => m.type === 'busy' && m.busy));
    assert.deepEqual(h.posted.filter((m) => m.type === 'busy').at(-1), { type: 'busy', busy: false });
    const final = itemsOf(chat).find((i) => i.kind === 'assistant');
    assert.deepEqual(final, { ...final!, text: 'You said: hello view', streaming: false });
    assert.deepEqual(chat.history(chat.activeSessionId!), [
      { role: 'user', content: 'hello view' },
      { role: 'assistant', content: 'You said: hello view' },
    ]);
    assert.equal(chat.viewState().sessions[0]?.title, 'hello view');
  });

  it('answers a permission card from the view once, and the file is written', T, async () => {
    const h = host(() => Promise.resolve(suite.dave.server.client));
    const chat = new ChatController(h);
    h.onPost = (message) => {
      if (message.type === 'append' && message.item.kind === 'permission') {
        const requestId = message.item.requestId;
        // Two clicks reach the controller; only one answer goes to the server.
        void chat.handleMessage({ type: 'permission', requestId, decision: 'allow' });
        void chat.handleMessage({ type: 'permission', requestId, decision: 'deny' });
      }
    };
    const outcome = await chat.send('write from-view.txt written-by-the-view');
    assert.equal(outcome?.kind, 'done', JSON.stringify(outcome));
    assert.equal(readFileSync(path.join(suite.dave.workspace, 'from-view.txt'), 'utf8'), 'written-by-the-view');
    const card = itemsOf(chat).find((i) => i.kind === 'permission');
    assert.deepEqual(card && { state: card.state, outcome: card.outcome }, { state: 'allowed', outcome: 'Allowed' });
    assert.equal(card?.kind === 'permission' && card.detail, 'from-view.txt\nwritten-by-the-view', 'paths relative to the workspace');
    const tool = itemsOf(chat).find((i) => i.kind === 'tool');
    assert.ok(tool && tool.kind === 'tool' && tool.done && !tool.isError && tool.toolName === 'Write', JSON.stringify(tool));
  });

  it('deny with a reason keeps the file unwritten', T, async () => {
    const h = host(() => Promise.resolve(suite.dave.server.client));
    const chat = new ChatController(h);
    h.onPost = (message) => {
      if (message.type === 'append' && message.item.kind === 'permission') {
        void chat.handleMessage({ type: 'permission', requestId: message.item.requestId, decision: 'deny', reason: 'no thanks' });
      }
    };
    await chat.send('write refused.txt nope');
    assert.equal(existsSync(path.join(suite.dave.workspace, 'refused.txt')), false);
    const card = itemsOf(chat).find((i) => i.kind === 'permission');
    assert.equal(card?.kind === 'permission' && card.state, 'denied');
  });

  it('Stop ends the turn, keeps the partial answer, and the session goes on', T, async () => {
    const h = host(() => Promise.resolve(suite.dave.server.client));
    const chat = new ChatController(h);
    let stopped = false;
    h.onPost = (message) => {
      if (!stopped && message.type === 'appendText') {
        stopped = true;
        void chat.handleMessage({ type: 'stop' });
      }
    };
    const outcome = await chat.send('slow 300 50');
    assert.equal(outcome?.kind, 'cancelled');
    const items = itemsOf(chat);
    assert.deepEqual(items.at(-1), { ...items.at(-1)!, kind: 'notice', text: 'Stopped.' });
    const history = chat.history(chat.activeSessionId!);
    assert.equal(history.length, 2);
    assert.equal(history[1]?.role, 'assistant');
    assert.ok((history[1]?.content.length ?? 0) > 0);
    assert.deepEqual(h.posted.filter((m) => m.type === 'busy').at(-1), { type: 'busy', busy: false });

    h.onPost = undefined;
    const again = await chat.send('after stop');
    assert.equal(again?.kind, 'done');
  });

  it('survives a reload and resends the transcript when the server lost the conversation', T, async () => {
    const store = new MemoryStore();
    const first = new ChatController(host(() => Promise.resolve(suite.dave.server.client), store));
    await first.send('the password is swordfish');
    const sessionId = first.activeSessionId!;
    await first.flush();
    assert.ok(store.data.has(STORAGE_KEY));

    // The server forgets the session, as after a restart without resume.
    assert.equal(await suite.dave.server.client.deleteSession(sessionId), true);

    // A new window: a new controller over the same workspace state.
    const h = host(() => Promise.resolve(suite.dave.server.client), store);
    const second = new ChatController(h);
    await second.handleMessage({ type: 'ready' });
    const state = h.posted.find((m): m is Extract<ToWebview, { type: 'state' }> => m.type === 'state')!.state;
    assert.equal(state.activeSessionId, sessionId);
    assert.deepEqual(
      state.items.map((i) => i.kind),
      ['user', 'assistant'],
    );
    await second.send('are you there');
    const recall = await second.send('recall');
    assert.equal(recall?.kind, 'done');
    assert.match(recall?.kind === 'done' ? recall.result.text : '', /swordfish/);
  });

  it('sends the transcript on a session’s first query to each server process and after a failure, else none', T, async () => {
    const first = recordingClient(suite.dave.server);
    let current = first;
    const chat = new ChatController(host(() => Promise.resolve(current.client)));
    await chat.send('the password is swordfish');
    await chat.send('second words');
    assert.deepEqual(first.queries.map((q) => q.messages), [[], []], 'the server has the conversation: no transcript');

    // Another server process, as after "Dave: Restart Server", with a state of its own: it never saw this session.
    const restarted = await startDave(suite.fake.url);
    try {
      current = recordingClient(restarted.server);
      const sessionId = chat.activeSessionId!;
      const transcript = chat.history(sessionId);
      await chat.send('are you there');
      assert.deepEqual(current.queries[0]?.messages, transcript, 'its first query to the new server carries the transcript');
      const recall = await chat.send('recall');
      assert.deepEqual(current.queries[1]?.messages, [], 'the second does not');
      assert.match(recall?.kind === 'done' ? recall.result.text : '', /swordfish/, 'and the new server has the conversation');

      const failed = await chat.send('error 400 the fake model says no');
      assert.equal(failed?.kind, 'failed');
      assert.deepEqual(current.queries[2]?.messages, []);
      const before = chat.history(sessionId);
      await chat.send('after the failure');
      assert.deepEqual(current.queries[3]?.messages, before, 'after a failure the transcript goes again');
      await chat.send('and once more');
      assert.deepEqual(current.queries[4]?.messages, []);
    } finally {
      await restarted.close();
    }
  });

  it('switches, creates and deletes sessions', T, async () => {
    const h = host(() => Promise.resolve(suite.dave.server.client));
    const chat = new ChatController(h);
    const a = chat.newSession();
    await chat.send('in session a');
    const b = chat.newSession();
    assert.equal(chat.activeSessionId, b);
    assert.deepEqual(chat.viewState().items, []);
    chat.switchSession(a);
    assert.equal(chat.viewState().items.length, 2);
    assert.equal(await chat.deleteSession(a), true);
    assert.equal(chat.activeSessionId, b);
    assert.deepEqual(chat.viewState().sessions.map((s) => s.id), [b]);
    assert.equal(await suite.dave.server.client.deleteSession(a), false, 'the server forgot it too');
  });

  it('a server that cannot start shows its message in the chat', T, async () => {
    const h = host(() =>
      Promise.reject(new ServerStartError('Cannot start the Dave server: "nope" was not found on PATH.')),
    );
    const chat = new ChatController(h);
    const outcome = await chat.send('hello?');
    assert.equal(outcome, undefined);
    await waitFor(() => itemsOf(chat).some((i) => i.kind === 'error'), 1000, 'an error item');
    const error = itemsOf(chat).find((i) => i.kind === 'error');
    assert.match(error?.kind === 'error' ? error.message : '', /"nope" was not found on PATH/);
  });

  it('a server the extension installs first says so in the status line while the question waits', T, async () => {
    // The host's getClient as ServerConnection's: onInstalling when pip starts (installer.ts).
    const h = host(async (onInstalling?: () => void) => {
      onInstalling?.();
      await new Promise((resolve) => setTimeout(resolve, 50));
      return suite.dave.server.client;
    });
    const chat = new ChatController(h);
    const outcome = await chat.send('hello from a new install');
    assert.equal(outcome?.kind, 'done');
    const statuses = h.posted.flatMap((m) => (m.type === 'status' ? [m.text] : []));
    assert.deepEqual(statuses.slice(0, 3), [
      'Starting the Dave server…',
      'Installing the Dave server (first start, about a minute)…',
      'Working…',
    ]);
    assert.equal(statuses.at(-1), '');
  });

  it('lists the sessions the server keeps as resumed ones, once, and resumes one', T, async () => {
    // Two conversations the server holds, as another window (or a session before a
    // reload whose view state is gone) left them.
    const client = suite.dave.server.client;
    const first = `listed-a-${process.pid}`;
    const second = `listed-b-${process.pid}`;
    const firstOutcome = await client.query({ sessionId: first, prompt: 'Refactor the parser\nplease' }).outcome;
    await client.query({ sessionId: second, prompt: 'Second topic' }).outcome;

    const chat = new ChatController(host(() => Promise.resolve(client)));
    const local = chat.newSession();
    await chat.refreshServerSessions();
    await chat.refreshServerSessions();
    const listed = chat.viewState().sessions.filter((s) => [first, second, local].includes(s.id));
    assert.deepEqual(
      listed.map((s) => [s.id, s.title, s.resumed ?? false]).sort(),
      [
        [first, 'Refactor the parser', true],
        [local, 'New session', false],
        [second, 'Second topic', true],
      ].sort(),
    );
    assert.equal(chat.viewState().sessions.filter((s) => s.id === first).length, 1, 'listed once');
    assert.equal(chat.activeSessionId, local, 'listing does not switch away from the open session');

    // A listed session shows its conversation as the backend recorded it (dave/history).
    chat.switchSession(first);
    const shown = itemsOf(chat);
    assert.deepEqual(
      shown.filter((i) => i.kind === 'user').map((i) => (i.kind === 'user' ? i.text : '')),
      ['Refactor the parser\nplease'],
    );
    const answers = shown.filter((i) => i.kind === 'assistant').map((i) => (i.kind === 'assistant' ? i.text : ''));
    assert.equal(answers.length, 1, JSON.stringify(shown));
    assert.equal(firstOutcome.kind, 'done');
    assert.equal(answers[0], firstOutcome.kind === 'done' ? firstOutcome.result.text : undefined);

    // Asking goes on with the server's conversation.
    await chat.send('recall');
    await waitFor(() => itemsOf(chat).some((i) => i.kind === 'assistant' && /Refactor the parser/.test(i.text)), 30_000, 'the recalled turn');
  });

  it('Allow always shows its rule; the same command then runs by the rule, a different one asks again', T, async () => {
    const client = suite.dave.server.client;
    const h = host(() => Promise.resolve(client));
    const chat = new ChatController(h);
    let answer: PermissionAnswer = 'allowAlways';
    h.onPost = (message) => {
      if (message.type === 'append' && message.item.kind === 'permission') {
        void chat.handleMessage({ type: 'permission', requestId: message.item.requestId, decision: answer });
      }
    };
    const bash = (command: string): string => `tool Bash ${JSON.stringify({ command })}`;
    const cards = (): Array<Extract<ChatItem, { kind: 'permission' }>> =>
      itemsOf(chat).filter((i): i is Extract<ChatItem, { kind: 'permission' }> => i.kind === 'permission');
    const notices = (): string[] => itemsOf(chat).flatMap((i) => (i.kind === 'notice' ? [i.text] : []));
    const gone = path.join(suite.dave.workspace, 'chat-gone.txt');
    const kept = path.join(suite.dave.workspace, 'chat-kept.txt');
    const rule = 'Bash(rm -f chat-gone.txt)';

    writeFileSync(gone, 'x');
    await chat.send(bash('rm -f chat-gone.txt'));
    const shown = h.posted.find((m) => m.type === 'append' && m.item.kind === 'permission');
    assert.deepEqual(
      shown?.type === 'append' && shown.item.kind === 'permission' && shown.item.allowAlways,
      { rule, label: 'this exact command' },
      'the view is told what "Allow always" adds before it is chosen',
    );
    assert.deepEqual(
      cards().map((c) => [c.state, c.outcome]),
      [['allowed', `Allowed always: added the rule ${rule}`]],
    );
    assert.equal(existsSync(gone), false);
    assert.deepEqual(notices(), []);

    writeFileSync(gone, 'x');
    answer = 'deny';
    await chat.send(bash('rm -f chat-gone.txt'));
    assert.equal(cards().length, 1, 'no new card: the rule allowed it');
    assert.deepEqual(notices(), [`Allowed by rule ${rule}`]);
    assert.equal(existsSync(gone), false, 'it ran');

    writeFileSync(kept, 'x');
    await chat.send(bash('rm -f chat-kept.txt'));
    assert.deepEqual(
      cards().slice(1).map((c) => [c.allowAlways?.rule, c.state]),
      [['Bash(rm -f chat-kept.txt)', 'denied']],
      'a different command asks again',
    );
    assert.equal(existsSync(kept), true);

    // "Dave: Manage Permission Rules": the QuickPick shows the rule; picking it removes it.
    const picks: RulePick[][] = [];
    const message = await manageRules(client, chat.activeSessionId, {
      pick: (items) => {
        picks.push(items);
        return Promise.resolve(items[0]);
      },
    });
    assert.deepEqual(picks.map((items) => items.map((i) => [i.label, i.description])), [[[rule, 'this exact command']]]);
    assert.match(picks[0][0].detail, /^Added .+\. Pick it to remove it\.$/);
    assert.equal(message, `Removed the rule ${rule} (this exact command): Dave asks again before that.`);
    assert.equal(await manageRules(client, chat.activeSessionId, { pick: () => assert.fail('nothing to pick') }), NO_RULES);

    writeFileSync(gone, 'x');
    await chat.send(bash('rm -f chat-gone.txt'));
    assert.equal(cards().length, 3, 'asks again once the rule is removed');
    assert.equal(existsSync(gone), true);
  });

  it('Manage Permission Rules: dismissing keeps the rule; new and missing sessions have none', T, async () => {
    const client = suite.dave.server.client;
    const h = host(() => Promise.resolve(client));
    const chat = new ChatController(h);
    h.onPost = (message) => {
      if (message.type === 'append' && message.item.kind === 'permission') {
        void chat.handleMessage({ type: 'permission', requestId: message.item.requestId, decision: 'allowAlways' });
      }
    };
    await chat.send('tool Bash {"command": "touch chat-touched.txt"}');
    const sessionId = chat.activeSessionId!;
    assert.equal(await manageRules(client, sessionId, { pick: () => Promise.resolve(undefined) }), undefined, 'dismissed: no message');
    assert.deepEqual((await client.listRules(sessionId))?.map((r) => r.rule), ['Bash(touch chat-touched.txt)']);

    const fresh = chat.newSession(); // never sent: the server does not know it yet
    assert.equal(await manageRules(client, fresh, { pick: () => assert.fail('nothing to pick') }), NO_RULES);
    assert.match((await manageRules(client, undefined, { pick: () => Promise.resolve(undefined) })) ?? '', /no Dave session/);
  });
});
