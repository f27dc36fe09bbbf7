/**
 * Issues 15 and 16 against the real server and the fake model: the editor's
 * tools answered from a stub of the vscode API (what the model receives is the
 * fake's `Tool said:` answer), the context and @mentions a prompt carries, the
 * model's questions and plans answered from the view, the queue, the pickers,
 * slash commands, images, and the context meter and cost.
 */

import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';

import { ChatController, type ChatHost } from '../src/chat/chatController';
import { parseMentions } from '../src/chat/mentions';
import {
  activeFileContext,
  EditorTools,
  lspSeverity,
  type EditorApi,
  type TextEditorLike,
  type UriLike,
} from '../src/editor/editorTools';
import type { DaveClient } from '../src/protocol/daveClient';
import { EDITOR_TOOLS } from '../src/protocol/editorTypes';
import type { ChatItem, ToWebview } from '../src/shared/messages';
import { recordingClient, startDave, startFakeModel, testHost, type DaveUnderTest, type FakeModel, type TestHost } from './helpers';

const T = { timeout: 120_000 };
// A 1x1 PNG.
const PNG =
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP4z8DwHwAFAAH/q842iQAAAABJRU5ErkJggg==';

// ---- a stub of the vscode API --------------------------------------------

class Uri implements UriLike {
  constructor(
    readonly scheme: string,
    readonly fsPath: string,
  ) {}
  static file(p: string): Uri {
    return new Uri('file', p);
  }
  static parse(value: string): Uri {
    const url = new URL(value);
    return new Uri(url.protocol.replace(/:$/, ''), decodeURIComponent(url.pathname));
  }
  toString(): string {
    return this.scheme === 'file' ? pathToFileURL(this.fsPath).href : `${this.scheme}:${this.fsPath}`;
  }
}

class Position {
  constructor(
    readonly line: number,
    readonly character: number,
  ) {}
}

const range = (l1: number, c1: number, l2: number, c2: number) => ({ start: new Position(l1, c1), end: new Position(l2, c2) });

interface Stub {
  api: EditorApi;
  /** The commands executed, with their arguments. */
  executed: Array<[string, unknown[]]>;
}

function stubVscode(workspace: string): Stub {
  const file = Uri.file(path.join(workspace, 'a.py'));
  const other = Uri.file(path.join(workspace, 'b.py'));
  const text = 'def greet(name):\n    return name\n\nprint(greet("a"))\n';
  const document = {
    uri: file,
    languageId: 'python',
    isDirty: true,
    getText: (r?: { start: Position; end: Position }) => {
      if (r === undefined) return text;
      const lines = text.split('\n');
      return lines.slice(r.start.line, r.end.line + 1).join('\n').slice(r.start.character);
    },
  };
  const editor: TextEditorLike = { document, selection: { ...range(0, 0, 1, 15), isEmpty: false } };
  const executed: Array<[string, unknown[]]> = [];
  const api: EditorApi = {
    languages: {
      getDiagnostics: (resource?: UriLike) => {
        const diagnostics = [{ range: range(3, 0, 3, 5), severity: 1, message: 'print in library code', source: 'pyflakes', code: { value: 'W1' } }];
        return resource === undefined ? [[file, diagnostics]] : resource.toString() === file.toString() ? diagnostics : [];
      },
    },
    commands: {
      executeCommand: <R>(command: string, ...rest: unknown[]): Promise<R> => {
        executed.push([command, rest]);
        const answers: Record<string, unknown> = {
          'vscode.executeDefinitionProvider': [
            { targetUri: file, targetRange: range(0, 0, 1, 15), targetSelectionRange: range(0, 4, 0, 9) },
          ],
          'vscode.executeReferenceProvider': [
            { uri: file, range: range(0, 4, 0, 9) },
            { uri: file, range: range(3, 6, 3, 11) },
          ],
          'vscode.executeHoverProvider': [{ contents: [{ value: '(function) def greet(name: str) -> str' }] }],
          'vscode.executeWorkspaceSymbolProvider': [{ name: 'greet', kind: 11, containerName: 'a', location: { uri: file, range: range(0, 4, 0, 9) } }],
        };
        return Promise.resolve(answers[command] as R);
      },
    },
    window: {
      activeTextEditor: editor,
      visibleTextEditors: [editor],
      tabGroups: {
        all: [
          {
            isActive: true,
            tabs: [
              { input: { uri: file }, isActive: true, isDirty: true },
              { input: { uri: other }, isActive: false, isDirty: false },
              { input: { original: other, modified: Uri.parse('dave-proposal:/x') }, isActive: false, isDirty: false },
            ],
          },
        ],
      },
    },
    workspace: { textDocuments: [document, { uri: other, languageId: 'python', isDirty: false, getText: () => '' }] },
    Uri,
    Position,
  };
  return { api, executed };
}

function host(client: DaveClient, extra: Partial<ChatHost> = {}): TestHost {
  return testHost(client, extra);
}

function textOf(outcome: Awaited<ReturnType<ChatController['send']>>): string {
  return outcome?.kind === 'done' ? outcome.result.text : JSON.stringify(outcome);
}

describe('issues 15 and 16 with the real server', () => {
  let fake: FakeModel;
  let dave: DaveUnderTest;
  let stub: Stub;

  before(async () => {
    fake = await startFakeModel();
    // The workspace exists only once the server started; the stub's paths are read at call time.
    const answering: { tools?: EditorTools } = {};
    dave = await startDave(fake.url, {}, {
      experimental: { dave: { editorTools: [...EDITOR_TOOLS] } },
      onConnection: (connection) => {
        for (const name of EDITOR_TOOLS) {
          connection.onRequest(`dave/editor/${name}`, (params: unknown) => answering.tools!.answer(name, params));
        }
      },
    });
    stub = stubVscode(dave.workspace);
    answering.tools = new EditorTools(stub.api);
    writeFileSync(path.join(dave.workspace, 'a.py'), 'def greet(name):\n    return name\n\nprint(greet("a"))\n');
    writeFileSync(path.join(dave.workspace, 'b.py'), 'from a import greet\n');
  }, { timeout: 120_000 });
  after(async () => {
    await dave?.close();
    await fake?.stop();
  });

  it('answers every editor tool from the vscode API, and the model receives the answers', T, async () => {
    const chat = new ChatController(host(dave.server.client, { cwd: dave.workspace }));
    const ask = async (tool: string, args: object): Promise<string> => textOf(await chat.send(`tool mcp__editor__${tool} ${JSON.stringify(args)}`));

    assert.equal(
      await ask('getDiagnostics', { path: 'a.py' }),
      'Tool said: a.py:4:1: warning [pyflakes W1]: print in library code\n    print(greet("a"))',
    );
    assert.equal(await ask('findDefinition', { path: 'a.py', symbol: 'greet' }), 'Tool said: a.py:1:5: def greet(name):');
    assert.deepEqual(stub.executed.at(-1)?.[1].map((a) => JSON.parse(JSON.stringify(a)) as unknown), [
      { scheme: 'file', fsPath: path.join(dave.workspace, 'a.py') },
      { line: 0, character: 4 },
    ]);
    assert.equal(
      await ask('findReferences', { path: 'a.py', symbol: 'greet', line: 4 }),
      'Tool said: a.py:1:5: def greet(name):\na.py:4:7: print(greet("a"))',
    );
    assert.deepEqual(JSON.parse(JSON.stringify(stub.executed.at(-1)?.[1][1])), { line: 3, character: 6 }, '0-based');
    assert.equal(await ask('hover', { path: 'a.py', symbol: 'greet' }), 'Tool said: (function) def greet(name: str) -> str');
    assert.equal(await ask('searchSymbols', { query: 'gre' }), 'Tool said: function greet in a at a.py:1:5: def greet(name):');
    assert.equal(await ask('getOpenEditors', {}), 'Tool said: a.py (python) [active, unsaved changes]\nb.py (python)');
    assert.equal(await ask('getCurrentSelection', {}), 'Tool said: a.py, lines 1-2:\ndef greet(name):\n    return name');
  });

  it('converts to LSP: severities 1-4, the active file with its selection', () => {
    assert.deepEqual([0, 1, 2, 3].map(lspSeverity), [1, 2, 3, 4]);
    const { api } = stubVscode('/w');
    assert.deepEqual(activeFileContext(api.window.activeTextEditor), {
      path: '/w/a.py',
      languageId: 'python',
      selection: { start: { line: 0, character: 0 }, end: { line: 1, character: 15 } },
      selectedText: 'def greet(name):\n    return name',
    });
    assert.equal(activeFileContext(undefined), undefined);
  });

  it('parses @mentions', () => {
    assert.deepEqual(parseMentions('see @src/a.py#L5-10, @b.py#L7 and @c.md. mail me@example.com @d.txt#L3-L4'), [
      { path: 'src/a.py', startLine: 5, endLine: 10 },
      { path: 'b.py', startLine: 7, endLine: 7 },
      { path: 'c.md' },
      { path: 'd.txt', startLine: 3, endLine: 4 },
    ]);
  });

  it('every prompt carries the active file and its @mentions; off, none', T, async () => {
    mkdirSync(path.join(dave.workspace, 'docs'), { recursive: true });
    writeFileSync(path.join(dave.workspace, 'docs', 'notes.md'), 'one\ntwo\nthree\n');
    const { client, queries } = recordingClient(dave.server);
    let on = true;
    const chat = new ChatController(
      host(client, { cwd: dave.workspace, activeFile: () => (on ? activeFileContext(stub.api.window.activeTextEditor) : undefined) }),
    );
    const outcome = await chat.send('explain @docs/notes.md#L2-3 and @missing.txt ctx-marker');
    assert.equal(textOf(outcome), 'You said: explain @docs/notes.md#L2-3 and @missing.txt ctx-marker');
    assert.deepEqual(queries.at(-1)?.context, {
      activeFile: {
        path: path.join(dave.workspace, 'a.py'),
        languageId: 'python',
        selection: { start: { line: 0, character: 0 }, end: { line: 1, character: 15 } },
        selectedText: 'def greet(name):\n    return name',
      },
      mentions: [{ path: 'docs/notes.md', startLine: 2, endLine: 3 }],
    });
    on = false;
    await chat.send('hello without context');
    assert.equal(queries.at(-1)?.context, undefined);
  });

  it('a question card: one option answers it, Decline declines', T, async () => {
    const { client, permissions } = recordingClient(dave.server);
    const h = host(client);
    const chat = new ChatController(h);
    let decision: 'allow' | 'deny' = 'allow';
    h.onPost = (message) => {
      if (message.type === 'append' && message.item.kind === 'permission') {
        const { requestId, questions } = message.item;
        assert.deepEqual(questions?.[0]?.options?.map((o) => o.label), ['Blue', 'Red']);
        void chat.handleMessage(
          decision === 'allow'
            ? { type: 'permission', requestId, decision, answers: { 'Which color?': 'Blue' } }
            : { type: 'permission', requestId, decision },
        );
      }
    };
    const question = {
      question: 'Which color?',
      header: 'Color',
      multiSelect: false,
      options: [
        { label: 'Blue', description: 'calm' },
        { label: 'Red', description: '' },
      ],
    };
    const ask = `tool AskUserQuestion ${JSON.stringify({ questions: [question] })}`;
    assert.match(textOf(await chat.send(ask)), /"Which color\?"="Blue"/);
    assert.deepEqual(permissions.at(-1), { requestId: (permissions.at(-1) as { requestId: string }).requestId, decision: 'allow', answers: { 'Which color?': 'Blue' } });
    const card = chat.items(chat.activeSessionId!).find((i): i is Extract<ChatItem, { kind: 'permission' }> => i.kind === 'permission');
    assert.equal(card?.outcome, 'Answered (Color: Blue)');
    decision = 'deny';
    assert.match(textOf(await chat.send(ask)), /declined to answer/);
  });

  it('the mode picker puts a new session in plan mode; an approved plan switches it to accept edits', T, async () => {
    const { client, permissions } = recordingClient(dave.server);
    const h = host(client);
    const chat = new ChatController(h);
    chat.newSession();
    await chat.handleMessage({ type: 'setPermissionMode', mode: 'plan' });
    assert.deepEqual(h.posted.filter((m) => m.type === 'settings').at(-1), { type: 'settings', settings: { model: '', permissionMode: 'plan' } });
    let plans: string[] = [];
    let approve = false;
    h.onPost = (message) => {
      if (message.type === 'append' && message.item.kind === 'permission' && message.item.plan !== undefined) {
        plans.push(message.item.plan);
        const requestId = message.item.requestId;
        void chat.handleMessage(
          approve
            ? { type: 'permission', requestId, decision: 'allow', permissionMode: 'acceptEdits' }
            : { type: 'permission', requestId, decision: 'deny', reason: 'add tests' },
        );
      }
    };
    assert.match(textOf(await chat.send('plan # Tidy up | - rename x')), /add tests/);
    assert.deepEqual(plans, ['# Tidy up\n- rename x']);
    plans = [];
    approve = true;
    await chat.send('plan # Tidy up | - rename x | - add tests');
    assert.deepEqual(plans, ['# Tidy up\n- rename x\n- add tests']);
    assert.equal((permissions.at(-1) as { permissionMode?: string }).permissionMode, 'acceptEdits');
    assert.deepEqual(chat.viewState().settings, { model: '', permissionMode: 'acceptEdits' });
    const listed = (await client.listSessions())?.sessions.find((s) => s.sessionId === chat.activeSessionId);
    assert.equal(listed?.permissionMode, 'acceptEdits');
    // The mode holds: a write runs without a card.
    h.onPost = undefined;
    await chat.send('write after-plan.txt done');
    assert.equal(chat.items(chat.activeSessionId!).filter((i) => i.kind === 'permission').length, 2);
  });

  it('queues prompts sent while a turn runs, runs them in order, and a removed one never runs', T, async () => {
    const { client, queries } = recordingClient(dave.server);
    const h = host(client);
    const chat = new ChatController(h);
    const first = chat.send('slow 15 20');
    await new Promise((resolve) => setTimeout(resolve, 50));
    const one = chat.send('hello one');
    const two = chat.send('hello two');
    const three = chat.send('hello three');
    assert.deepEqual(chat.queued().map((q) => q.text), ['hello one', 'hello two', 'hello three']);
    const queuedId = chat.queued()[1]?.id ?? '';
    await chat.handleMessage({ type: 'unqueue', id: queuedId });
    assert.equal(await two, undefined);
    assert.deepEqual(h.posted.filter((m) => m.type === 'queue').at(-1), {
      type: 'queue',
      queued: chat.queued(),
    });
    const outcomes = await Promise.all([first, one, three]);
    assert.deepEqual(outcomes.map((o) => o?.kind), ['done', 'done', 'done']);
    assert.deepEqual(queries.map((q) => q.prompt), ['slow 15 20', 'hello one', 'hello three']);
    const items = chat.items(chat.activeSessionId!);
    assert.deepEqual(items.filter((i) => i.kind === 'user').map((i) => i.kind === 'user' && i.text), ['slow 15 20', 'hello one', 'hello three']);
    assert.equal(items.filter((i) => i.kind === 'notice').length, 0, 'no warning');
    assert.deepEqual(chat.queued(), []);
  });

  it('images go along, slash commands are listed (cached), and the meter shows context and cost', T, async () => {
    const { client } = recordingClient(dave.server);
    const h = host(client);
    const chat = new ChatController(h);
    await chat.handleMessage({ type: 'send', text: 'images', attachments: [{ type: 'image', mediaType: 'image/png', data: PNG }] });
    const images = chat.items(chat.activeSessionId!).find((i) => i.kind === 'assistant');
    assert.match(images?.kind === 'assistant' ? images.text : '', /^Images: image\/png \(\d+ bytes\)$/);
    const user = chat.items(chat.activeSessionId!)[0];
    assert.equal(user?.kind === 'user' && user.images, 1);

    const meter = h.posted.filter((m): m is Extract<ToWebview, { type: 'meter' }> => m.type === 'meter').at(-1)?.meter;
    assert.ok((meter?.contextTokens ?? 0) > 0, JSON.stringify(meter));
    assert.equal(typeof meter?.costUsd, 'number');
    assert.deepEqual(chat.viewState().meter, meter);

    await chat.handleMessage({ type: 'listCommands' });
    const commands = h.posted.filter((m): m is Extract<ToWebview, { type: 'commands' }> => m.type === 'commands').at(-1)?.commands ?? [];
    assert.ok(commands.some((c) => c.name === 'compact'), JSON.stringify(commands.slice(0, 5)));
    const again = await client.listCommands(chat.activeSessionId);
    assert.equal(again, await client.listCommands(chat.activeSessionId), 'the same cached list');
  });
});
