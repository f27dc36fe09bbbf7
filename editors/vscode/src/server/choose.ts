/**
 * Which server the extension starts (issue 28), free of `vscode`:
 * `dave.server.command` when set; else, with `dave.server.install` "auto"
 * (the default), `dave-lsp` from PATH if there is one and the extension's own
 * provisioned server if not; "always" provisions even with a `dave-lsp` on
 * PATH; "never" keeps the old fallback (`dave-lsp` on PATH, else
 * `python3 -m dave_lsp`).
 */

import type { ServerCommand } from '../protocol/server';

export const INSTALL_MODES = ['auto', 'always', 'never'] as const;
export type InstallMode = (typeof INSTALL_MODES)[number];

/** Where the server that runs came from, for messages and Show Server Info. */
export type ServerOrigin = 'setting' | 'path' | 'fallback' | 'provisioned';

export const ORIGIN_TEXT: Record<ServerOrigin, string> = {
  setting: 'the "dave.server.command" setting',
  path: 'dave-lsp on PATH',
  fallback: 'python3 -m dave_lsp ("dave.server.install" is "never")',
  provisioned: "the extension's own install",
};

/** A setting's value as an InstallMode (anything else: "auto"). */
export function installMode(value: unknown): InstallMode {
  return (INSTALL_MODES as readonly unknown[]).includes(value) ? (value as InstallMode) : 'auto';
}

/**
 * The command to run, or "provision". `resolved` is resolveServerCommand's
 * answer (the setting, else `dave-lsp` on PATH, else `python3 -m dave_lsp`);
 * `configured` says whether it came from the setting.
 */
export function chooseServer(
  resolved: ServerCommand,
  configured: boolean,
  mode: InstallMode,
): { command: ServerCommand; origin: ServerOrigin } | 'provision' {
  if (configured) return { command: resolved, origin: 'setting' };
  if (mode === 'always') return 'provision';
  if (resolved.command === 'dave-lsp') return { command: resolved, origin: 'path' };
  return mode === 'never' ? { command: resolved, origin: 'fallback' } : 'provision';
}
