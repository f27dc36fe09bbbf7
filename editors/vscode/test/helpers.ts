/**
 * Test helpers: the Python that runs dave-lsp, the shipped fake model server,
 * a real dave-lsp server over stdio pointed at it, and what the chat tests
 * share: an in-memory workspace state, a host that records what the view is
 * sent, and a client that records what it sends. No mocks of our own.
 */

import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before } from 'node:test';

import type { ChatHost, StateStore } from '../src/chat/chatController';
import { DaveClient, rpcFrom } from '../src/protocol/daveClient';
import type { ProgressValue } from '../src/protocol/progressTypes';
import { startStdioServer, type StdioServer, type StdioServerOptions } from '../src/protocol/server';
import { Methods, type InitializationOptions, type PermissionParams, type QueryParams } from '../src/protocol/types';
import type { ToWebview } from '../src/shared/messages';

/** editors/vscode; tests run bundled from out/test/. */
export const extensionRoot = path.resolve(__dirname, '..', '..');
export const repoRoot = path.resolve(extensionRoot, '..', '..');

export function pythonPath(): string {
  const fromEnv = process.env.DAVE_LSP_PYTHON;
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  return path.join(repoRoot, '.venv', 'bin', 'python');
}

export function tempDir(prefix: string): string {
  return mkdtempSync(path.join(tmpdir(), `dave-vscode-${prefix}-`));
}

export interface FakeModel {
  url: string;
  process: ChildProcessWithoutNullStreams;
  stop(): Promise<void>;
}

/** `python -m dave_lsp.testing --port 0`; resolves once it prints its URL. */
export async function startFakeModel(timeoutMs = 30_000): Promise<FakeModel> {
  const python = pythonPath();
  if (!existsSync(python)) throw new Error(`No Python at ${python}: set DAVE_LSP_PYTHON`);
  const child = spawn(python, ['-m', 'dave_lsp.testing', '--port', '0'], {
    stdio: ['pipe', 'pipe', 'pipe'],
    cwd: repoRoot,
  });
  let output = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`fake model did not start in time: ${output}`)), timeoutMs);
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      const match = /listening on (http:\/\/[\w.:[\]-]+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    };
    child.stderr.on('data', onData);
    child.stdout.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`fake model exited with ${code}: ${output}`));
    });
  });
  child.stdout.resume();
  child.stderr.resume();
  return {
    url,
    process: child,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(killer);
    },
  };
}

/** The initializationOptions that point the Claude Code CLI at the fake model. */
export function fakeModelOptions(url: string, home: string, cwd: string): InitializationOptions {
  return {
    env: {
      ANTHROPIC_BASE_URL: url,
      ANTHROPIC_API_KEY: 'sk-ant-fake',
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
      CLAUDE_CODE_MAX_RETRIES: '0',
      HOME: home,
    },
    cwd,
  };
}

export interface DaveUnderTest {
  server: StdioServer;
  workspace: string;
  home: string;
  stderr(): string;
  close(): Promise<void>;
}

export async function startDave(
  url: string,
  extra: InitializationOptions = {},
  /** More for startStdioServer: client capabilities and request handlers (the editor tools). */
  more: Pick<StdioServerOptions, 'experimental' | 'onConnection'> = {},
): Promise<DaveUnderTest> {
  const workspace = tempDir('ws');
  const home = tempDir('home');
  const server = await startStdioServer({
    command: { command: pythonPath(), args: ['-m', 'dave_lsp'] },
    cwd: repoRoot,
    env: { ...process.env, HOME: home },
    workspaceFolder: workspace,
    initializationOptions: { ...fakeModelOptions(url, home, workspace), ...extra },
    initializeTimeoutMs: 60_000,
    ...more,
  });
  return {
    server,
    workspace,
    home,
    stderr: () => server.stderr.text(),
    close: async () => {
      await server.close();
      rmSync(workspace, { recursive: true, force: true });
      rmSync(home, { recursive: true, force: true });
    },
  };
}

/**
 * Starts the fake model and a real server before the calling suite's tests and
 * stops both after them (call it inside `describe`). Read `.dave` in the tests.
 */
export function serverForSuite(timeoutMs = 120_000): { readonly dave: DaveUnderTest; readonly fake: FakeModel } {
  let fake: FakeModel | undefined;
  let dave: DaveUnderTest | undefined;
  before(async () => {
    fake = await startFakeModel();
    dave = await startDave(fake.url);
  }, { timeout: timeoutMs });
  after(async () => {
    await dave?.close();
    await fake?.stop();
  });
  return {
    get dave(): DaveUnderTest {
      if (dave === undefined) throw new Error('the suite\'s server did not start');
      return dave;
    },
    get fake(): FakeModel {
      if (fake === undefined) throw new Error('the suite\'s fake model did not start');
      return fake;
    },
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves when `predicate` holds, polling; rejects after `timeoutMs`. */
export async function waitFor(predicate: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

let sessionCounter = 0;
export function newSessionId(name: string): string {
  sessionCounter += 1;
  return `test-${name}-${process.pid}-${sessionCounter}`;
}

/** The workspace state (vscode.Memento) in memory; values are copied as VS Code's are. */
export class MemoryStore implements StateStore {
  data = new Map<string, unknown>();
  get<T>(key: string): T | undefined {
    return structuredClone(this.data.get(key)) as T | undefined;
  }
  update(key: string, value: unknown): Promise<void> {
    this.data.set(key, structuredClone(value));
    return Promise.resolve();
  }
}

/** A ChatHost that records every message for the view. */
export interface TestHost extends ChatHost {
  posted: ToWebview[];
  onPost?: (message: ToWebview) => void;
}

export function testHost(client: DaveClient | (() => Promise<DaveClient>), extra: Partial<ChatHost> = {}): TestHost {
  const h: TestHost = {
    posted: [],
    getClient: typeof client === 'function' ? client : () => Promise.resolve(client),
    post: (message) => {
      h.posted.push(message);
      h.onPost?.(message);
    },
    store: new MemoryStore(),
    confirmDelete: () => Promise.resolve(true),
    ...extra,
  };
  return h;
}

export interface RecordingClient {
  client: DaveClient;
  /** The params of every dave/query sent. */
  queries: QueryParams[];
  /** The params of every dave/permission sent. */
  permissions: PermissionParams[];
  /** Every progress value the server sent. */
  reports: ProgressValue[];
}

/** A client of `server` that records what it sends and the progress it receives. */
export function recordingClient(server: StdioServer): RecordingClient {
  const queries: QueryParams[] = [];
  const permissions: PermissionParams[] = [];
  const reports: ProgressValue[] = [];
  const rpc = rpcFrom(server.connection);
  const client = new DaveClient({
    sendRequest: (method, params, token) => {
      if (method === Methods.query) queries.push(structuredClone(params as QueryParams));
      if (method === Methods.permission) permissions.push(structuredClone(params as PermissionParams));
      return rpc.sendRequest(method, params, token);
    },
    onProgress: (token, handler) =>
      rpc.onProgress(token, (value) => {
        reports.push(structuredClone(value));
        handler(value);
      }),
  });
  client.setCapabilities(server.capabilities);
  return { client, queries, permissions, reports };
}
