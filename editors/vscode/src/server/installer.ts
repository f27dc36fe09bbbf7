/**
 * The extension brings its own server (issue 28), the VS Code side: decides
 * which server starts (choose.ts), and when it is the extension's own, makes
 * sure it is installed (provision.ts) under a cancellable progress
 * notification with pip's output in the Dave output channel. A failure is one
 * error message with Retry and Open Settings. The Python comes from the
 * Python extension's selected interpreter when that extension is installed
 * and the workspace is trusted (in Restricted Mode the selection may be the
 * cloned folder's own .venv), else from PATH (python.ts).
 */

import * as vscode from 'vscode';

import { ServerStartError, type ServerCommand } from '../protocol/server';
import { chooseServer, ORIGIN_TEXT, type InstallMode, type ServerOrigin } from './choose';
import {
  bundledWheel,
  isCurrent,
  ProvisionError,
  provision,
  readInstalled,
  removeInstalled,
  sha256,
  venvDir,
  venvServerCommand,
  type Installed,
} from './provision';
import { findPython, type PythonCandidate } from './python';

/** A failed install, already shown to the user with Retry and Open Settings. */
export class InstallError extends ServerStartError {
  override name = 'InstallError';
}

export interface ResolvedServer {
  command: ServerCommand;
  origin: ServerOrigin;
  installed?: Installed;
}

/** The part of the Python extension's API used here (ms-python.python's `environments`). */
interface PythonExtensionApi {
  environments?: {
    getActiveEnvironmentPath(resource?: vscode.Uri): { path: string } | undefined;
    resolveEnvironment(env: { path: string } | string): Promise<{ executable?: { uri?: vscode.Uri } } | undefined>;
  };
}

export class ServerInstaller {
  private installing: Promise<Installed> | undefined;
  /** Whether pip runs now (an install under its progress notification), and who is told. */
  private provisioning = false;
  private readonly installWatchers = new Set<() => void>();
  private readonly storage: string;
  private readonly root: string;
  private readonly version: string;

  constructor(
    context: Pick<vscode.ExtensionContext, 'globalStorageUri' | 'extension'>,
    private readonly output: vscode.LogOutputChannel,
  ) {
    this.storage = context.globalStorageUri.fsPath;
    this.root = context.extension.extensionPath;
    const version = (context.extension.packageJSON as { version?: unknown }).version;
    this.version = typeof version === 'string' ? version : '0';
  }

  /** The server to start for these settings, installing the extension's own first when it is the one. */
  async locate(resolved: ServerCommand, configured: boolean, mode: InstallMode, trusted: boolean): Promise<ResolvedServer> {
    const choice = chooseServer(resolved, configured, mode);
    if (choice !== 'provision') return choice;
    const installed = await this.ensure(false, trusted);
    return { command: venvServerCommand(this.storage), origin: 'provisioned', installed };
  }

  /** Installs the server unless a current install is there (`force`: always). Rejects with InstallError. */
  ensure(force: boolean, trusted: boolean): Promise<Installed> {
    this.installing ??= this.install(force, trusted).finally(() => {
      this.installing = undefined;
    });
    return this.installing;
  }

  /**
   * Calls `listener` when an install starts (at once if one runs), until the returned
   * function is called: the chat says so while its question waits (issue 28).
   */
  whileInstalling(listener: () => void): () => void {
    this.installWatchers.add(listener);
    if (this.provisioning) listener();
    return () => this.installWatchers.delete(listener);
  }

  /** Removes the install (the server must be stopped first), then installs it again. */
  async reinstall(trusted: boolean): Promise<Installed> {
    await this.installing?.catch(() => undefined);
    removeInstalled(this.storage);
    return this.ensure(true, trusted);
  }

  /** Lines for Show Server Info about the extension's own install. */
  describeInstall(): string[] {
    const installed = readInstalled(this.storage);
    const wheel = bundledWheel(this.root);
    const lines = [`Bundled wheel: ${wheel ?? 'none (a build without it)'}`, `Own install: ${venvDir(this.storage)}`];
    if (installed === undefined) lines.push('  not installed');
    else {
      lines.push(
        `  ${installed.wheel} for extension ${installed.extensionVersion}, made with Python ${installed.pythonVersion} (${installed.python}) on ${installed.installedAt} in ${installed.seconds} s`,
      );
    }
    return lines;
  }

  static describeOrigin(origin: ServerOrigin): string {
    return ORIGIN_TEXT[origin];
  }

  private async install(force: boolean, trusted: boolean): Promise<Installed> {
    try {
      const wheel = bundledWheel(this.root);
      if (wheel === undefined) {
        throw new ProvisionError(
          `This Dave extension carries no server to install (a build without server/dave_lsp-*.whl): build it with scripts/package.sh, install dave-lsp on PATH, or set "dave.server.command".`,
        );
      }
      const existing = readInstalled(this.storage);
      if (!force && isCurrent(existing, this.version, sha256(wheel))) {
        this.output.info(`Using the Dave server installed in ${venvDir(this.storage)} (${existing!.wheel}).`);
        return existing!;
      }
      const python = await findPython(await this.selectedInterpreter(trusted));
      return await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: 'Dave: installing its server', cancellable: true },
        async (progress, token) => {
          const abort = new AbortController();
          const cancel = token.onCancellationRequested(() => abort.abort());
          this.output.show(true);
          this.provisioning = true;
          for (const watcher of [...this.installWatchers]) watcher();
          try {
            return await provision({
              storage: this.storage,
              wheel,
              extensionVersion: this.version,
              python,
              log: (line) => this.output.info(line),
              progress: (message) => progress.report({ message }),
              signal: abort.signal,
            });
          } finally {
            this.provisioning = false;
            cancel.dispose();
          }
        },
      );
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.output.error(message);
      void this.offerRetry(message);
      throw new InstallError(message);
    }
  }

  /** The one message of a failed install: Retry starts the server again; Open Settings shows dave.server.*. */
  private async offerRetry(message: string): Promise<void> {
    const answer = await vscode.window.showErrorMessage(message, 'Retry', 'Open Settings');
    if (answer === 'Retry') await vscode.commands.executeCommand('dave.restartServer');
    else if (answer === 'Open Settings') await vscode.commands.executeCommand('workbench.action.openSettings', 'dave.server');
  }

  /** The Python extension's interpreter for the first folder, when the workspace is trusted. */
  private async selectedInterpreter(trusted: boolean): Promise<PythonCandidate[]> {
    const extension = vscode.extensions.getExtension<PythonExtensionApi>('ms-python.python');
    if (!trusted || extension === undefined) return [];
    try {
      const api = extension.isActive
        ? extension.exports
        : await Promise.race([extension.activate(), new Promise<undefined>((resolve) => setTimeout(resolve, 15_000))]);
      const environments = api?.environments;
      const active = environments?.getActiveEnvironmentPath(vscode.workspace.workspaceFolders?.[0]?.uri);
      if (environments === undefined || active === undefined) return [];
      const resolved = await environments.resolveEnvironment(active);
      const executable = resolved?.executable?.uri?.fsPath ?? active.path;
      return executable ? [{ command: executable, source: "the Python extension's interpreter" }] : [];
    } catch (error) {
      this.output.warn(`The Python extension did not name an interpreter: ${error instanceof Error ? error.message : String(error)}`);
      return [];
    }
  }
}
