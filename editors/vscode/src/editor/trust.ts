/**
 * Folder trust (issue 24), the VS Code side: VS Code's workspace trust decides
 * whether the server loads the workspace folders' Claude Code project settings
 * (`.claude/settings.json`, `.mcp.json`: hooks, MCP servers, env), and whether a
 * folder's own `.vscode/settings.json` may steer what the extension starts.
 *
 * - A trusted workspace sends its folders as `initializationOptions.trustedFolders`;
 *   an untrusted one sends none, so the server runs with the user's settings only.
 * - Granting trust (`onDidGrantWorkspaceTrust`) calls `dave/trustFolder` for each
 *   folder on the running server (its live sessions load the settings at their
 *   next turn). The server remembers such a grant across restarts, so the
 *   extension records the folders it granted and takes them back when VS Code
 *   opens the workspace untrusted again (trust revoked, the window reloaded).
 * - In an untrusted workspace the RESTRICTED_SETTINGS come from the user's
 *   settings only: a cloned folder could otherwise point `dave.server.command`
 *   at its own script. package.json lists the same keys in
 *   `capabilities.untrustedWorkspaces.restrictedConfigurations`.
 *
 * Like editorTools.ts it never imports `vscode` at run time: it takes the part
 * of the API it uses (`TrustApi`, which the `vscode` module satisfies).
 */

import { errorMessage } from '../protocol/errors';
import type { TrustFolderResult } from '../protocol/sessionTypes';
import type { InitializationOptions } from '../protocol/types';

// ---- the part of the vscode API used here (structural) -------------------

export interface TrustApi {
  readonly workspace: {
    readonly isTrusted: boolean;
    readonly workspaceFolders: readonly { readonly uri: { readonly scheme: string; readonly fsPath: string } }[] | undefined;
    onDidGrantWorkspaceTrust(listener: () => unknown): { dispose(): unknown };
  };
}

/** vscode.WorkspaceConfiguration, as far as a setting's value and where it came from go. */
export interface ConfigLike {
  get<T>(section: string): T | undefined;
  inspect<T>(section: string): { defaultValue?: T; globalValue?: T } | undefined;
}

/** vscode.Memento (the extension's globalState): where the folders this extension trusted are kept. */
export interface GrantStore {
  get<T>(key: string): T | undefined;
  update(key: string, value: unknown): PromiseLike<void>;
}

/** What of the DaveClient trust needs. */
export interface TrustClient {
  trustFolder(path: string, trusted: boolean): Promise<TrustFolderResult | undefined>;
}

// ---- settings a folder may not set until it is trusted -------------------

/**
 * The `dave.*` settings (without `dave.`) that start a process, shape its
 * environment, or let the model run tools without asking. package.json's
 * `restrictedConfigurations` lists them with the `dave.` prefix.
 */
export const RESTRICTED_SETTINGS = ['server.command', 'server.env', 'server.install', 'permissionMode'] as const;

/**
 * A `dave.*` setting's value. In an untrusted workspace a restricted one is the
 * user's (or the default): the workspace's and its folders' values are ignored.
 * VS Code does the same for `restrictedConfigurations`; this holds either way.
 */
export function readSetting<T>(config: ConfigLike, section: string, trusted: boolean): T | undefined {
  if (trusted || !(RESTRICTED_SETTINGS as readonly string[]).includes(section)) return config.get<T>(section);
  const inspected = config.inspect<T>(section);
  return inspected?.globalValue ?? inspected?.defaultValue;
}

// ---- the workspace's folders and their trust ------------------------------

/** Schemes whose fsPath is a folder on the server's machine (code-server and Remote use vscode-remote). */
const LOCAL_SCHEMES = new Set(['file', 'vscode-remote']);

/** The workspace folders as paths the server can read (virtual folders have none). */
export function workspaceFolderPaths(api: TrustApi): string[] {
  const paths = (api.workspace.workspaceFolders ?? [])
    .filter((folder) => LOCAL_SCHEMES.has(folder.uri.scheme) && folder.uri.fsPath !== '')
    .map((folder) => folder.uri.fsPath);
  return [...new Set(paths)];
}

const GRANTED_KEY = 'dave.trustGranted';

export class WorkspaceTrust {
  constructor(
    private readonly api: TrustApi,
    /** Folders this extension trusted through dave/trustFolder; without a store nothing is taken back. */
    private readonly store: GrantStore | undefined,
    private readonly log: (message: string) => void = () => undefined,
  ) {}

  get isTrusted(): boolean {
    return this.api.workspace.isTrusted;
  }

  /** `initializationOptions.trustedFolders` for a server starting now, when VS Code trusts the workspace. */
  trustedFolders(): string[] | undefined {
    if (!this.isTrusted) return undefined;
    const folders = workspaceFolderPaths(this.api);
    return folders.length > 0 ? folders : undefined;
  }

  /**
   * The initializationOptions trust adds for a server starting now. When a grant
   * of this extension is to be taken back (see `started`), no spare CLI starts:
   * one started before the server hears of it would load the folder's settings.
   */
  startOptions(): Pick<InitializationOptions, 'trustedFolders' | 'prewarm'> {
    const trustedFolders = this.trustedFolders();
    if (trustedFolders !== undefined) return { trustedFolders };
    return this.toTakeBack().length > 0 ? { prewarm: 0 } : {};
  }

  /**
   * After the server answered initialize. `sentTrusted`: whether its options
   * carried the trusted folders. Trust granted while it started is passed on;
   * in an untrusted workspace the grants this extension made earlier are taken back.
   */
  async started(client: TrustClient, sentTrusted: boolean): Promise<void> {
    if (sentTrusted) return;
    if (this.isTrusted) {
      await this.grant(client);
      return;
    }
    for (const folder of this.toTakeBack()) {
      try {
        const result = await client.trustFolder(folder, false);
        if (result === undefined) return;
        await this.record(folder, false);
        this.log(`Workspace trust: ${folder} is not trusted in this window; its Claude Code settings are no longer loaded.`);
      } catch (error) {
        this.log(`Workspace trust: could not take back the trust of ${folder}: ${errorMessage(error)}`);
      }
    }
  }

  /** `dave/trustFolder {path, trusted: true}` for each workspace folder (nothing on a server without it). */
  async grant(client: TrustClient): Promise<void> {
    for (const folder of workspaceFolderPaths(this.api)) {
      try {
        const result = await client.trustFolder(folder, true);
        if (result === undefined) {
          this.log('Workspace trust: this Dave server does not offer dave/trustFolder; restart it to load the folder\'s Claude Code settings.');
          return;
        }
        await this.record(folder, true);
      } catch (error) {
        this.log(`Workspace trust: could not trust ${folder} on the Dave server: ${errorMessage(error)}`);
      }
    }
  }

  /**
   * Calls `grant` on the running server when VS Code's trust is granted.
   * `running` gives the client of a running server, or undefined (a server
   * that starts later gets the folders at initialize, or from `started`).
   */
  watch(running: () => TrustClient | undefined): { dispose(): unknown } {
    return this.api.workspace.onDidGrantWorkspaceTrust(() => {
      const client = running();
      if (client !== undefined) return this.grant(client);
      return undefined;
    });
  }

  /** In an untrusted workspace: its folders that this extension trusted on the server before. */
  private toTakeBack(): string[] {
    if (this.isTrusted) return [];
    const granted = this.granted();
    return workspaceFolderPaths(this.api).filter((folder) => granted.includes(folder));
  }

  private granted(): string[] {
    const value = this.store?.get<unknown>(GRANTED_KEY);
    return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
  }

  private async record(folder: string, trusted: boolean): Promise<void> {
    if (this.store === undefined) return;
    const others = this.granted().filter((f) => f !== folder);
    await this.store.update(GRANTED_KEY, trusted ? [...others, folder] : others);
  }
}
