/**
 * "Dave: Reinstall Server" and "Dave: Show Server Info" (issue 28).
 */

import * as vscode from 'vscode';

import { describeCommand } from '../protocol/server';
import type { ServerConnection } from '../serverConnection';
import { ServerInstaller } from './installer';

export function registerServerCommands(
  connection: ServerConnection,
  installer: ServerInstaller,
  output: vscode.LogOutputChannel,
): vscode.Disposable[] {
  return [
    vscode.commands.registerCommand('dave.reinstallServer', async () => {
      // The running server may be the installed one: stop it before its venv goes.
      await connection.stop();
      try {
        const installed = await installer.reinstall(vscode.workspace.isTrusted);
        await connection.client();
        void vscode.window.showInformationMessage(`Dave: the server is reinstalled (${installed.wheel}, ${installed.seconds} s).`);
      } catch {
        // The installer showed the failure, with Retry and Open Settings.
      }
    }),
    vscode.commands.registerCommand('dave.showServerInfo', async () => {
      const server = connection.server;
      const info = connection.serverInfo;
      const summary = server
        ? `Dave server: ${describeCommand(server.command)}, from ${ServerInstaller.describeOrigin(server.origin)}; ${
            info ? `running ${info.name} ${info.version ?? ''} (protocol ${info.protocol ?? 'unknown'})` : 'not running'
          }.`
        : 'Dave server: not started yet in this window (it starts with the first question).';
      output.info(summary);
      for (const line of installer.describeInstall()) output.info(line);
      const answer = await vscode.window.showInformationMessage(summary, 'Show Output');
      if (answer === 'Show Output') output.show();
    }),
  ];
}
