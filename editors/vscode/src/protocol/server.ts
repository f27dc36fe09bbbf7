/**
 * Finding and starting the dave-lsp server process, free of `vscode`.
 *
 * The extension uses `resolveServerCommand` and `spawnServer` to hand
 * vscode-languageclient a started process; tests and headless callers use
 * `startStdioServer`, which also runs `initialize` over a vscode-jsonrpc
 * connection. Both turn every way a start can fail into one line that says
 * what to change.
 */

import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';

import {
  createMessageConnection,
  StreamMessageReader,
  StreamMessageWriter,
  type MessageConnection,
} from 'vscode-jsonrpc/node';

import { DaveClient, rpcFrom } from './daveClient';
import { errorMessage } from './errors';
import type { DaveCapabilities, InitializationOptions } from './types';

export interface ServerCommand {
  command: string;
  args: string[];
}

export class ServerStartError extends Error {
  override name = 'ServerStartError';
}

const SETTING_HINT =
  'Install dave-lsp (`pip install dave-lsp`) or set "dave.server.command" to the command that starts it, e.g. ["/path/to/.venv/bin/dave-lsp"].';

export function describeCommand(command: ServerCommand): string {
  return [command.command, ...command.args]
    .map((word) => (/^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`))
    .join(' ');
}

function isExecutableFile(file: string): boolean {
  try {
    if (!statSync(file).isFile()) return false;
    accessSync(file, process.platform === 'win32' ? constants.F_OK : constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The absolute path of `name` on PATH, or undefined. */
export function findOnPath(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (name.includes('/') || name.includes(path.sep)) {
    return isExecutableFile(name) ? path.resolve(name) : undefined;
  }
  const dirs = (env.PATH ?? env.Path ?? '').split(path.delimiter).filter((d) => d !== '');
  const exts = process.platform === 'win32' ? (env.PATHEXT ?? '.EXE;.CMD;.BAT').split(';') : [''];
  for (const dir of dirs) {
    for (const ext of exts) {
      const candidate = path.join(dir, name + ext);
      if (isExecutableFile(candidate)) return candidate;
    }
  }
  return undefined;
}

/**
 * The command from the `dave.server.command` setting (a list of words, or one
 * string split on spaces); empty: `dave-lsp` from PATH, else `python3 -m dave_lsp`.
 */
export function resolveServerCommand(
  configured: readonly string[] | string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): ServerCommand {
  const words =
    typeof configured === 'string'
      ? configured.trim().split(/\s+/).filter((w) => w !== '')
      : (configured ?? []).filter((w) => typeof w === 'string' && w !== '');
  if (words.length > 0) {
    const [command, ...args] = words as [string, ...string[]];
    return { command, args };
  }
  if (findOnPath('dave-lsp', env) !== undefined) return { command: 'dave-lsp', args: [] };
  return { command: 'python3', args: ['-m', 'dave_lsp'] };
}

/** Keeps the last lines a process wrote to a stream, for error messages. */
export class OutputTail {
  private lines: string[] = [];
  private partial = '';

  constructor(private readonly maxLines = 30) {}

  push(chunk: Buffer | string): void {
    const text = this.partial + chunk.toString();
    const parts = text.split(/\r?\n/);
    this.partial = parts.pop() ?? '';
    for (const line of parts) {
      if (line.trim() !== '') this.lines.push(line);
    }
    if (this.lines.length > this.maxLines) this.lines = this.lines.slice(-this.maxLines);
  }

  /** The kept lines, the unfinished one included. */
  text(): string {
    return [...this.lines, ...(this.partial.trim() !== '' ? [this.partial] : [])].join('\n');
  }

  /** The last few lines joined into one line. */
  summary(count = 3): string {
    const all = [...this.lines, ...(this.partial.trim() !== '' ? [this.partial] : [])];
    return all.slice(-count).map((l) => l.trim()).join(' | ');
  }
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/**
 * Starts the server with pipes on stdin, stdout and stderr. Rejects with a
 * ServerStartError when the executable is missing or cannot be run.
 */
export async function spawnServer(
  command: ServerCommand,
  options: SpawnOptions = {},
): Promise<ChildProcessWithoutNullStreams> {
  const env = options.env ?? process.env;
  const executable = findOnPath(command.command, env);
  if (executable === undefined) {
    const where = command.command.includes('/') ? 'does not exist or is not executable' : 'was not found on PATH';
    throw new ServerStartError(
      `Cannot start the Dave server: "${command.command}" ${where}. ${SETTING_HINT}`,
    );
  }
  if (options.cwd !== undefined) {
    try {
      if (!statSync(options.cwd).isDirectory()) throw new Error('not a folder');
    } catch {
      throw new ServerStartError(`Cannot start the Dave server: its working folder "${options.cwd}" does not exist.`);
    }
  }
  const child = spawn(executable, command.args, {
    cwd: options.cwd,
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
    windowsHide: true,
  });
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', (error) =>
      reject(new ServerStartError(`Cannot start the Dave server (${describeCommand(command)}): ${error.message}. ${SETTING_HINT}`)),
    );
  });
  return child;
}

/** The sentence that says how a server process ended before it was ready. */
export function describeEarlyExit(
  command: ServerCommand,
  code: number | null,
  signal: NodeJS.Signals | null,
  stderr: OutputTail,
): string {
  const how = signal !== null ? `was killed by ${signal}` : `exited with code ${code}`;
  const said = stderr.summary();
  return `The Dave server (${describeCommand(command)}) ${how} before it answered initialize${said ? `; it said: ${said}` : ''}. ${SETTING_HINT}`;
}

export interface StdioServerOptions {
  command: ServerCommand;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  initializationOptions?: InitializationOptions;
  /** Sent as rootUri and the only workspace folder. */
  workspaceFolder?: string;
  initializeTimeoutMs?: number;
  onStderr?: (chunk: string) => void;
  /** Called for `window/logMessage`. */
  onLog?: (type: number, message: string) => void;
  /** `capabilities.experimental` to send at initialize, e.g. `{dave: {editorTools: [...]}}`. */
  experimental?: Record<string, unknown>;
  /** Registers server-to-client request handlers before initialize (e.g. the editor tools). */
  onConnection?: (connection: MessageConnection) => void;
}

export interface StdioServer {
  readonly process: ChildProcessWithoutNullStreams;
  readonly connection: MessageConnection;
  readonly client: DaveClient;
  readonly initializeResult: InitializeResultLike;
  readonly capabilities: DaveCapabilities | undefined;
  readonly stderr: OutputTail;
  /** `shutdown`, `exit`, then waits for the process (killing it after 5 s). */
  close(): Promise<void>;
}

export interface InitializeResultLike {
  capabilities?: { experimental?: { dave?: DaveCapabilities } & Record<string, unknown> } & Record<string, unknown>;
  serverInfo?: { name: string; version?: string };
}

/** Starts the server over stdio and completes the LSP `initialize` handshake. */
export async function startStdioServer(options: StdioServerOptions): Promise<StdioServer> {
  const child = await spawnServer(options.command, { env: options.env, cwd: options.cwd });
  const stderr = new OutputTail();
  child.stderr.on('data', (chunk: Buffer) => {
    stderr.push(chunk);
    options.onStderr?.(chunk.toString());
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  // Writes to a dead process's stdin must not crash the host.
  child.stdin.on('error', () => undefined);

  const connection = createMessageConnection(
    new StreamMessageReader(child.stdout),
    new StreamMessageWriter(child.stdin),
  );
  connection.onNotification('window/logMessage', (params: { type: number; message: string }) => {
    options.onLog?.(params.type, params.message);
  });
  // The server may create progress tokens itself when a query has none.
  connection.onRequest('window/workDoneProgress/create', () => null);
  connection.onError(() => undefined);
  options.onConnection?.(connection);
  connection.listen();

  const client = new DaveClient(rpcFrom(connection));
  const workspaceFolder = options.workspaceFolder ?? options.cwd;
  const timeoutMs = options.initializeTimeoutMs ?? 30_000;
  let timer: NodeJS.Timeout | undefined;
  let initializeResult: InitializeResultLike;
  try {
    initializeResult = await Promise.race([
      connection.sendRequest<InitializeResultLike>('initialize', {
        processId: process.pid,
        clientInfo: { name: 'dave-vscode-protocol' },
        rootUri: workspaceFolder ? pathToFileURL(workspaceFolder).href : null,
        workspaceFolders: workspaceFolder
          ? [{ uri: pathToFileURL(workspaceFolder).href, name: path.basename(workspaceFolder) }]
          : null,
        capabilities: {
          window: { workDoneProgress: true },
          ...(options.experimental !== undefined ? { experimental: options.experimental } : {}),
        },
        initializationOptions: options.initializationOptions ?? {},
      }),
      exited.then(({ code, signal }) => {
        // Let the last stderr bytes arrive before describing the exit.
        return new Promise<never>((_, reject) =>
          setTimeout(() => reject(new ServerStartError(describeEarlyExit(options.command, code, signal, stderr))), 50),
        );
      }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new ServerStartError(
                `The Dave server (${describeCommand(options.command)}) did not answer initialize within ${Math.round(timeoutMs / 1000)} s. ${SETTING_HINT}`,
              ),
            ),
          timeoutMs,
        );
      }),
    ]);
  } catch (error) {
    connection.dispose();
    child.kill('SIGKILL');
    if (error instanceof ServerStartError) throw error;
    throw new ServerStartError(`The Dave server refused to start: ${errorMessage(error)}`);
  } finally {
    clearTimeout(timer);
  }
  void connection.sendNotification('initialized', {});
  const capabilities = initializeResult.capabilities?.experimental?.dave;
  client.setCapabilities(capabilities);

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      client.dispose();
      if (child.exitCode === null && child.signalCode === null) {
        try {
          await Promise.race([
            connection.sendRequest('shutdown'),
            new Promise((resolve) => setTimeout(resolve, 2000)),
          ]);
          await connection.sendNotification('exit');
        } catch {
          // Already gone.
        }
        child.stdin.end();
        const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(killer);
      }
      connection.dispose();
    })();
    return closing;
  };

  return { process: child, connection, client, initializeResult, capabilities, stderr, close };
}
