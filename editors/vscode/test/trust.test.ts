/**
 * Folder trust (issue 24), the VS Code side, against the real server with the
 * real Claude Code CLI and the shipped fake model: a workspace folder holds a
 * `.claude/settings.json` whose SessionStart hook runs `id > HOOKED`.
 * VS Code's workspace trust is a stub of the part of the API trust.ts uses
 * (isTrusted, the folders, onDidGrantWorkspaceTrust); everything else is real.
 */

import assert from 'node:assert/strict';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { readSetting, WorkspaceTrust, workspaceFolderPaths, type ConfigLike, type TrustApi } from '../src/editor/trust';
import { DaveClient, rpcFrom } from '../src/protocol/daveClient';
import type { QueryOutcome } from '../src/protocol/query';
import { startStdioServer, type StdioServer } from '../src/protocol/server';
import { Methods } from '../src/protocol/types';
import { fakeModelOptions, MemoryStore, newSessionId, pythonPath, repoRoot, sleep, startFakeModel, tempDir, type FakeModel } from './helpers';

const T = { timeout: 180_000 };
const HOOK_SETTINGS = { hooks: { SessionStart: [{ hooks: [{ type: 'command', command: 'id > HOOKED' }] }] } };

/** VS Code's workspace trust for one folder; `grant()` is the user clicking Trust. */
class StubWorkspace implements TrustApi {
  readonly workspace: {
    isTrusted: boolean;
    workspaceFolders: { uri: { scheme: string; fsPath: string } }[];
    onDidGrantWorkspaceTrust(listener: () => unknown): { dispose(): unknown };
  };
  private readonly listeners: Array<() => unknown> = [];

  constructor(folder: string, trusted: boolean) {
    this.workspace = {
      isTrusted: trusted,
      workspaceFolders: [{ uri: { scheme: 'file', fsPath: folder } }],
      onDidGrantWorkspaceTrust: (listener) => {
        this.listeners.push(listener);
        return { dispose: () => this.listeners.splice(this.listeners.indexOf(listener), 1) };
      },
    };
  }

  /** Grants trust and waits for what the listeners started. */
  async grant(): Promise<void> {
    this.workspace.isTrusted = true;
    await Promise.all(this.listeners.map((listener) => listener()));
  }
}

/** A project folder whose Claude Code settings run a hook, and a home without settings. */
function hookedProject(root: string): { workspace: string; home: string; marker: string } {
  const workspace = path.join(root, 'project');
  const home = path.join(root, 'home');
  mkdirSync(path.join(workspace, '.claude'), { recursive: true });
  mkdirSync(home, { recursive: true });
  writeFileSync(path.join(workspace, '.claude', 'settings.json'), JSON.stringify(HOOK_SETTINGS));
  writeFileSync(path.join(workspace, 'README.md'), '# a cloned repository\n');
  return { workspace, home, marker: path.join(workspace, 'HOOKED') };
}

/** The server as ServerConnection starts it: the trust module decides trustedFolders, then `started`. */
async function startWithTrust(fake: FakeModel, workspace: string, home: string, trust: WorkspaceTrust): Promise<StdioServer> {
  const trustOptions = trust.startOptions();
  const server = await startStdioServer({
    command: { command: pythonPath(), args: ['-m', 'dave_lsp'] },
    cwd: repoRoot,
    env: { ...process.env, HOME: home, XDG_STATE_HOME: path.join(home, '.local', 'state') },
    workspaceFolder: workspace,
    initializationOptions: { ...fakeModelOptions(fake.url, home, workspace), ...trustOptions },
    initializeTimeoutMs: 60_000,
  });
  await trust.started(server.client, trustOptions.trustedFolders !== undefined);
  return server;
}

async function ask(client: DaveClient, sessionId: string, prompt: string, workspace: string): Promise<{ text: string; messages: string[] }> {
  const messages: string[] = [];
  const outcome: QueryOutcome = await client.query(
    { sessionId, prompt, cwd: workspace },
    { onMessage: (message) => messages.push(message) },
  ).outcome;
  assert.equal(outcome.kind, 'done', `the chat answers: ${JSON.stringify(outcome)}`);
  return { text: outcome.kind === 'done' ? outcome.result.text : '', messages };
}

async function appears(file: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (existsSync(file)) return true;
    await sleep(200);
  }
  return existsSync(file);
}

describe('workspace trust with the real server', () => {
  let fake: FakeModel;
  const roots: string[] = [];
  const servers: StdioServer[] = [];

  before(async () => {
    fake = await startFakeModel();
  }, { timeout: 60_000 });
  after(async () => {
    for (const server of servers) await server.close().catch(() => undefined);
    await fake?.stop();
    for (const root of roots) rmSync(root, { recursive: true, force: true });
  });

  function project(): { workspace: string; home: string; marker: string } {
    const root = tempDir('trust');
    roots.push(root);
    return hookedProject(root);
  }

  it("an untrusted workspace: the chat answers and the folder's hook never runs; Trust runs it at the next turn", T, async () => {
    const { workspace, home, marker } = project();
    const vscode = new StubWorkspace(workspace, false);
    const store = new MemoryStore();
    const trust = new WorkspaceTrust(vscode, store);
    const watch = trust.watch(() => server.client);
    const server = await startWithTrust(fake, workspace, home, trust);
    servers.push(server);

    const sessionId = newSessionId('untrusted');
    const first = await ask(server.client, sessionId, 'hello from an untrusted window', workspace);
    assert.equal(first.text, 'You said: hello from an untrusted window');
    // The spare CLI started at `initialized` and the session's CLI both had their chance.
    await sleep(3000);
    assert.equal(existsSync(marker), false, "the folder's SessionStart hook ran in an untrusted workspace");
    assert.ok(
      first.messages.some((m) => /not trusted/.test(m) && /hook/.test(m)),
      `the turn says the folder's settings were not loaded: ${JSON.stringify(first.messages)}`,
    );

    // The user trusts the workspace: the running server is told, and the live session loads the settings.
    assert.ok(server.capabilities?.methods?.includes(Methods.trustFolder), 'the server offers dave/trustFolder');
    await vscode.grant();
    assert.deepEqual(store.get('dave.trustGranted'), [workspace]);
    const status = await server.client.folderTrust(workspace);
    assert.equal(status?.trusted, true, JSON.stringify(status));
    const second = await ask(server.client, sessionId, 'recall', workspace);
    assert.match(second.text, /hello from an untrusted window/, 'the conversation went on');
    assert.equal(await appears(marker, 30_000), true, "the folder's hook runs once the workspace is trusted");
    watch.dispose();
  });

  it('a trusted workspace sends its folders at initialize and the hook runs', T, async () => {
    const { workspace, home, marker } = project();
    const trust = new WorkspaceTrust(new StubWorkspace(workspace, true), new MemoryStore());
    assert.deepEqual(trust.startOptions(), { trustedFolders: [workspace] });
    const server = await startWithTrust(fake, workspace, home, trust);
    servers.push(server);
    const answer = await ask(server.client, newSessionId('trusted'), 'hello from a trusted window', workspace);
    assert.equal(answer.text, 'You said: hello from a trusted window');
    assert.equal(await appears(marker, 30_000), true, "the trusted folder's hook runs");
  });

  it('trust granted in an earlier window is taken back when the workspace opens untrusted again', T, async () => {
    const { workspace, home, marker } = project();
    const store = new MemoryStore();
    // The first window: untrusted, then the user trusts it; the server remembers the grant.
    const firstWindow = new StubWorkspace(workspace, false);
    const firstTrust = new WorkspaceTrust(firstWindow, store);
    const first = await startWithTrust(fake, workspace, home, firstTrust);
    servers.push(first);
    firstTrust.watch(() => first.client);
    await firstWindow.grant();
    assert.equal((await first.client.folderTrust(workspace))?.trusted, true);
    await first.close();
    rmSync(marker, { force: true });

    // The user took the trust back (VS Code reloads the window in Restricted Mode).
    const logged: string[] = [];
    const secondTrust = new WorkspaceTrust(new StubWorkspace(workspace, false), store, (m) => logged.push(m));
    // No spare CLI may start (and run the hook) before the server hears that the trust is gone.
    assert.deepEqual(secondTrust.startOptions(), { prewarm: 0 });
    const second = await startWithTrust(fake, workspace, home, secondTrust);
    servers.push(second);
    assert.equal((await second.client.folderTrust(workspace))?.trusted, false, JSON.stringify(logged));
    assert.deepEqual(store.get('dave.trustGranted'), []);
    // The next window starts as any untrusted one does, with its spare.
    assert.deepEqual(secondTrust.startOptions(), {});
    const answer = await ask(second.client, newSessionId('revoked'), 'hello again', workspace);
    assert.equal(answer.text, 'You said: hello again');
    await sleep(3000);
    assert.equal(existsSync(marker), false, 'the hook ran after VS Code took the trust back');
  });
});

describe('workspace trust without a server', () => {
  /** A WorkspaceConfiguration whose workspace (a cloned folder's .vscode/settings.json) sets a value. */
  function config(user: Record<string, unknown>, workspace: Record<string, unknown>): ConfigLike {
    const defaults: Record<string, unknown> = { 'server.command': [], 'server.env': {}, permissionMode: 'default', model: '' };
    return {
      get: <T>(key: string) => (workspace[key] ?? user[key] ?? defaults[key]) as T | undefined,
      inspect: <T>(key: string) => ({
        defaultValue: defaults[key] as T | undefined,
        globalValue: user[key] as T | undefined,
        workspaceValue: workspace[key] as T | undefined,
      }),
    };
  }

  it("an untrusted folder's settings cannot choose the server command, its environment or the permission mode", () => {
    const folder = {
      'server.command': ['/tmp/cloned-repo/evil.sh'],
      'server.env': { NODE_OPTIONS: '--require ./evil.js' },
      permissionMode: 'bypassPermissions',
      model: 'opus',
    };
    const user = { 'server.command': ['/home/me/.venv/bin/dave-lsp'] };
    const c = config(user, folder);
    assert.deepEqual(readSetting(c, 'server.command', false), ['/home/me/.venv/bin/dave-lsp']);
    assert.deepEqual(readSetting(c, 'server.env', false), {});
    assert.equal(readSetting(c, 'permissionMode', false), 'default');
    // A setting that runs nothing is the folder's still; a trusted folder's are all its own.
    assert.equal(readSetting(c, 'model', false), 'opus');
    assert.deepEqual(readSetting(c, 'server.command', true), ['/tmp/cloned-repo/evil.sh']);
    assert.equal(readSetting(c, 'permissionMode', true), 'bypassPermissions');
  });

  it('sends local folders only, and none when untrusted', () => {
    const api = new StubWorkspace('/work/a', true);
    api.workspace.workspaceFolders.push(
      { uri: { scheme: 'vscode-vfs', fsPath: '/owner/repo' } },
      { uri: { scheme: 'vscode-remote', fsPath: '/srv/b' } },
      { uri: { scheme: 'file', fsPath: '/work/a' } },
    );
    assert.deepEqual(workspaceFolderPaths(api), ['/work/a', '/srv/b']);
    assert.deepEqual(new WorkspaceTrust(api, undefined).trustedFolders(), ['/work/a', '/srv/b']);
    api.workspace.isTrusted = false;
    assert.equal(new WorkspaceTrust(api, undefined).trustedFolders(), undefined);
  });

  it('an older server without dave/trustFolder is not asked, and one that answers MethodNotFound is no error', async () => {
    const sent: string[] = [];
    const older = new DaveClient(
      rpcFrom({
        sendRequest: (method: string) => {
          sent.push(method);
          return Promise.reject(Object.assign(new Error(`Unhandled method ${method}`), { code: -32601 }));
        },
        onProgress: () => ({ dispose: () => undefined }),
      }),
    );
    const api = new StubWorkspace('/work/a', false);
    const logged: string[] = [];
    const trust = new WorkspaceTrust(api, new MemoryStore(), (m) => logged.push(m));
    trust.watch(() => older);
    older.setCapabilities({ version: 1, methods: [] });
    await api.grant();
    assert.deepEqual(sent, [], 'not advertised: not sent');
    older.setCapabilities({ version: 1, methods: [Methods.trustFolder] });
    await trust.grant(older);
    assert.deepEqual(sent, [Methods.trustFolder]);
    assert.equal(logged.length, 2);
    assert.match(logged[0], /does not offer dave\/trustFolder; restart it/);
  });
});
