/**
 * ServerConnection: starts dave-lsp with vscode-languageclient from the
 * `dave.*` settings, restarts it, and hands out a DaveClient bound to it.
 * All intelligence stays in the Python server; this only finds it and
 * forwards settings (and VS Code's workspace trust, through trust.ts).
 */

import * as vscode from 'vscode';
import { LanguageClient, State, type LanguageClientOptions } from 'vscode-languageclient/node';

import type { EditorTools } from './editor/editorTools';
import { readSetting, type WorkspaceTrust } from './editor/trust';
import { DaveClient, rpcFrom } from './protocol/daveClient';
import { EDITOR_TOOLS } from './protocol/editorTypes';
import { errorMessage } from './protocol/errors';
import {
  describeCommand,
  OutputTail,
  resolveServerCommand,
  ServerStartError,
  spawnServer,
  type ServerCommand,
} from './protocol/server';
import type { DaveCapabilities, InitializationOptions, PermissionMode } from './protocol/types';
import { installMode, type InstallMode } from './server/choose';
import type { ResolvedServer, ServerInstaller } from './server/installer';

export interface DaveSettings {
  /** The setting's command, else dave-lsp on PATH, else python3 -m dave_lsp (see `configured`). */
  command: ServerCommand;
  /** Whether `command` came from "dave.server.command". */
  configured: boolean;
  /** "dave.server.install": when the extension's own server is used (issue 28). */
  install: InstallMode;
  env: Record<string, string>;
  initializationOptions: InitializationOptions;
  cwd: string | undefined;
}

/**
 * The server's settings. `trusted`: VS Code trusts the workspace; if not, the
 * settings that start or steer a process come from the user's settings only.
 */
export function readSettings(trusted: boolean, trustOptions: Pick<InitializationOptions, 'trustedFolders' | 'prewarm'> = {}): DaveSettings {
  const config = vscode.workspace.getConfiguration('dave');
  const rawEnv = readSetting<Record<string, unknown>>(config, 'server.env', trusted) ?? {};
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(rawEnv)) {
    if (value === null || value === undefined) continue;
    // A setting is JSON: strings as they are, numbers and booleans as they print, anything else as JSON.
    env[key] = typeof value === 'string' ? value : JSON.stringify(value);
  }
  const processEnv = { ...process.env, ...env };
  const configuredCommand = readSetting<string[] | string>(config, 'server.command', trusted);
  const command = resolveServerCommand(configuredCommand, processEnv);
  const configured =
    typeof configuredCommand === 'string'
      ? configuredCommand.trim() !== ''
      : Array.isArray(configuredCommand) && configuredCommand.some((w) => typeof w === 'string' && w !== '');
  const install = installMode(readSetting<string>(config, 'server.install', trusted));
  const cwd = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  const initializationOptions: InitializationOptions = {
    backend: config.get<'claude' | 'openai'>('backend') ?? 'claude',
    permissionMode: readSetting<PermissionMode>(config, 'permissionMode', trusted) ?? 'default',
  };
  const model = config.get<string>('model')?.trim();
  if (model) initializationOptions.model = model;
  if (Object.keys(env).length > 0) initializationOptions.env = env;
  if (cwd !== undefined) initializationOptions.cwd = cwd;
  Object.assign(initializationOptions, trustOptions);
  return { command, configured, install, env, initializationOptions, cwd };
}

export class ServerConnection implements vscode.Disposable {
  private languageClient: LanguageClient | undefined;
  private daveClient: DaveClient | undefined;
  private starting: Promise<DaveClient> | undefined;
  private current: ResolvedServer | undefined;
  private readonly stopped = new vscode.EventEmitter<void>();
  /** Fires when a running server stops or is restarted. */
  readonly onDidStop = this.stopped.event;
  /** Passes a grant of workspace trust on to the running server. */
  private readonly trustWatch: { dispose(): unknown } | undefined;

  constructor(
    private readonly output: vscode.LogOutputChannel,
    /** Answers the server's `dave/editor/*` requests (issue 15); listed at initialize. */
    private readonly editorTools?: EditorTools,
    /** VS Code's workspace trust, passed on to the server (issue 24). */
    private readonly trust?: WorkspaceTrust,
    /** Installs the extension's own server when no other is set or on PATH (issue 28). */
    private readonly installer?: ServerInstaller,
  ) {
    this.trustWatch = trust?.watch(() => (this.isRunning ? this.daveClient : undefined));
  }

  /** The server last started (or starting) and where it came from, for Show Server Info. */
  get server(): ResolvedServer | undefined {
    return this.current;
  }

  /** The running server's serverInfo and protocol version. */
  get serverInfo(): { name: string; version?: string; protocol?: string } | undefined {
    const result = this.isRunning ? this.languageClient?.initializeResult : undefined;
    if (result?.serverInfo === undefined) return undefined;
    const experimental = result.capabilities.experimental as { dave?: DaveCapabilities } | undefined;
    const protocol = experimental?.dave?.version;
    return { ...result.serverInfo, ...(protocol !== undefined ? { protocol: String(protocol) } : {}) };
  }

  get isRunning(): boolean {
    return this.languageClient?.state === State.Running;
  }

  /**
   * The client, starting the server on first use. Rejects with one readable line.
   * onInstalling: called if the extension installs its own server before this start ends.
   */
  client(onInstalling?: () => void): Promise<DaveClient> {
    if (this.daveClient !== undefined && this.isRunning) return Promise.resolve(this.daveClient);
    this.starting ??= this.start().finally(() => {
      this.starting = undefined;
    });
    const starting = this.starting;
    if (onInstalling !== undefined && this.installer !== undefined) {
      const unwatch = this.installer.whileInstalling(onInstalling);
      void starting.then(unwatch, unwatch);
    }
    return starting;
  }

  async restart(): Promise<DaveClient> {
    await this.stop();
    return this.client();
  }

  async stop(): Promise<void> {
    const client = this.languageClient;
    this.languageClient = undefined;
    this.daveClient?.dispose();
    this.daveClient = undefined;
    if (client !== undefined) {
      try {
        await client.stop(5000);
      } catch (error) {
        this.output.warn(`Stopping the Dave server: ${errorMessage(error)}`);
      }
      this.stopped.fire();
    }
  }

  dispose(): void {
    this.trustWatch?.dispose();
    void this.stop();
    this.stopped.dispose();
  }

  private async start(): Promise<DaveClient> {
    if (this.languageClient !== undefined) await this.stop();
    const trustOptions = this.trust?.startOptions() ?? {};
    const trusted = this.trust?.isTrusted ?? true;
    const settings = readSettings(trusted, trustOptions);
    const server: ResolvedServer = this.installer
      ? await this.installer.locate(settings.command, settings.configured, settings.install, trusted)
      : { command: settings.command, origin: settings.configured ? 'setting' : 'fallback' };
    this.current = server;
    const stderr = new OutputTail();
    let spawnError: unknown;
    this.output.info(`Starting the Dave server (${server.origin}): ${describeCommand(server.command)}`);

    const clientOptions: LanguageClientOptions = {
      // A chat server: no documents to sync.
      documentSelector: [],
      outputChannel: this.output,
      initializationOptions: settings.initializationOptions,
      initializationFailedHandler: () => false,
      connectionOptions: { maxRestartCount: 0 },
    };
    const languageClient = new LanguageClient(
      'dave',
      'Dave',
      async () => {
        try {
          const child = await spawnServer(server.command, {
            env: { ...process.env, ...settings.env },
            cwd: settings.cwd,
          });
          child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
          child.once('exit', (code, signal) => {
            if (this.languageClient === languageClient) {
              this.output.warn(`The Dave server exited (${signal ?? `code ${code}`}).`);
            }
          });
          return child;
        } catch (error) {
          spawnError = error;
          throw error;
        }
      },
      clientOptions,
    );
    const tools = this.editorTools;
    if (tools !== undefined) {
      // Offer the editor's tools at initialize (capabilities.experimental.dave.editorTools) ...
      languageClient.registerFeature({
        fillClientCapabilities: (capabilities) => {
          const experimental = (capabilities.experimental ?? {}) as Record<string, unknown>;
          capabilities.experimental = { ...experimental, dave: { editorTools: [...EDITOR_TOOLS] } };
        },
        initialize: () => undefined,
        getState: () => ({ kind: 'static' }),
        clear: () => undefined,
      });
      // ... and answer them.
      tools.register((method, handler) => languageClient.onRequest(method, handler));
    }
    languageClient.onDidChangeState((event) => {
      if (event.newState === State.Stopped && this.languageClient === languageClient) {
        this.languageClient = undefined;
        this.daveClient?.dispose();
        this.daveClient = undefined;
        this.stopped.fire();
      }
    });

    try {
      await languageClient.start();
    } catch (error) {
      try {
        await languageClient.dispose(2000);
      } catch {
        // Already stopped.
      }
      const cause = spawnError ?? error;
      const said = stderr.summary();
      const message =
        cause instanceof ServerStartError
          ? cause.message
          : `The Dave server (${describeCommand(server.command)}) could not start: ${errorMessage(cause)}${said ? `; it said: ${said}` : ''}. Check "dave.server.command" and the Dave output.`;
      this.output.error(message);
      throw new ServerStartError(message);
    }
    this.languageClient = languageClient;
    const dave = new DaveClient(rpcFrom(languageClient), {
      log: (message) => this.output.warn(message),
    });
    const experimental = languageClient.initializeResult?.capabilities.experimental as
      | { dave?: DaveCapabilities }
      | undefined;
    dave.setCapabilities(experimental?.dave);
    const info = languageClient.initializeResult?.serverInfo;
    this.output.info(
      `Dave server ready${info ? `: ${info.name} ${info.version ?? ''}` : ''} (protocol ${experimental?.dave?.version ?? 'unknown'}).`,
    );
    this.daveClient = dave;
    // Trust granted while it started, or taken back since the last run, before the first question.
    await this.trust?.started(dave, trustOptions.trustedFolders !== undefined);
    return dave;
  }
}
