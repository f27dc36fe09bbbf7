/**
 * The real VS Code for the e2e tests: code-server (VS Code in the browser)
 * with the built .vsix installed, opened on a folder in Debian's Chromium
 * through playwright-core. scripts/test.sh installs the tools
 * (scripts/e2e-setup.sh) and passes their paths in DAVE_E2E_CHROMIUM,
 * DAVE_E2E_NODE24_BIN and DAVE_E2E_CODE_SERVER; without them the e2e files skip.
 * `openDave` is what every e2e file starts with: a fake model, a folder, and
 * VS Code opened on it with this repository's dave-lsp; `openChat`, `send`,
 * `ask` and `idle` drive the chat the way a user does.
 */

import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import * as path from 'node:path';

import type { Browser, Frame, Locator, Page } from 'playwright-core';

import { extensionRoot, fakeModelOptions, pythonPath, repoRoot, sleep, startFakeModel, tempDir } from './helpers';

const chromiumPath = process.env.DAVE_E2E_CHROMIUM;
const node24Bin = process.env.DAVE_E2E_NODE24_BIN;
const codeServer = process.env.DAVE_E2E_CODE_SERVER;
export const vsix = process.env.DAVE_VSIX ?? path.join(extensionRoot, 'dave-lsp.vsix');
export const artifacts = process.env.DAVE_E2E_ARTIFACTS ?? path.join(extensionRoot, 'test-artifacts');

/** Why the e2e tests skip here, or false when they can run. */
export const e2eSkip: string | false =
  chromiumPath && node24Bin && codeServer
    ? existsSync(vsix)
      ? false
      : `no ${vsix}: run npm run package`
    : 'the real-VS-Code test runs from scripts/test.sh (DAVE_E2E_* not set)';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

async function waitForHttp(url: string, timeoutMs: number, proc: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`code-server exited with ${proc.exitCode}: ${output()}`);
    try {
      const response = await fetch(url);
      if (response.status < 500) return;
    } catch {
      // Not listening yet.
    }
    await sleep(250);
  }
  throw new Error(`code-server did not answer on ${url}: ${output()}`);
}

/** The frame that holds the chat webview's content (webviews nest two iframes deep). */
export async function chatFrame(page: Page, timeoutMs: number): Promise<Frame> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (const frame of page.frames()) {
      try {
        if ((await frame.locator('textarea[aria-label="Message Dave"]').count()) > 0) return frame;
      } catch {
        // A frame that went away while we looked.
      }
    }
    await sleep(250);
  }
  throw new Error('the Dave chat webview did not appear');
}

export interface CodeServerOptions {
  /** A temporary folder for code-server's user data, extensions and home. */
  root: string;
  /** The folder VS Code opens. */
  workspace: string;
  /** The user's settings.json (the Dave settings among them). */
  settings: Record<string, unknown>;
  /** Workspace trust on: the folder opens in Restricted Mode (no startup prompt) until trusted. Off: trust is disabled. */
  workspaceTrust?: boolean;
  /**
   * code-server's PATH after Node 24's bin (default: this process's PATH). Given, the extension
   * host keeps it: code-server does not resolve the login shell's environment (as it does by default).
   */
  path?: string;
}

export interface CodeServerWindow {
  readonly page: Page;
  readonly home: string;
  /** Closes the browser and stops code-server (and the processes it started). */
  close(): Promise<void>;
}

/** Installs the .vsix into a fresh code-server, starts it and opens `workspace` in Chromium. */
export async function openCodeServer(options: CodeServerOptions): Promise<CodeServerWindow> {
  const { chromium } = await import('playwright-core');
  const userData = path.join(options.root, 'user-data');
  const extensions = path.join(options.root, 'extensions');
  const home = path.join(options.root, 'home');
  for (const dir of [path.join(userData, 'User'), extensions, home]) mkdirSync(dir, { recursive: true });
  const trust = options.workspaceTrust === true;
  writeFileSync(
    path.join(userData, 'User', 'settings.json'),
    JSON.stringify(
      {
        ...(trust ? { 'security.workspace.trust.startupPrompt': 'never' } : { 'security.workspace.trust.enabled': false }),
        'workbench.startupEditor': 'none',
        'workbench.tips.enabled': false,
        'telemetry.telemetryLevel': 'off',
        'extensions.autoUpdate': false,
        'extensions.autoCheckUpdates': false,
        'update.mode': 'none',
        // Room for a side-by-side diff: no built-in chat in the secondary side bar.
        'workbench.secondarySideBar.defaultVisibility': 'hidden',
        'chat.disableAIFeatures': true,
        ...options.settings,
      },
      null,
      2,
    ),
  );

  const env = {
    ...process.env,
    PATH: `${node24Bin}${path.delimiter}${options.path ?? process.env.PATH ?? ''}`,
    HOME: home,
    // VS Code's server skips resolving the login shell's environment when VSCODE_CLI is 1.
    ...(options.path !== undefined ? { VSCODE_CLI: '1' } : {}),
  };
  const node = path.join(node24Bin!, 'node');
  const install = spawnSync(node, [codeServer!, '--extensions-dir', extensions, '--user-data-dir', userData, '--install-extension', vsix], {
    env,
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.equal(install.status, 0, `installing the .vsix: ${install.stdout}\n${install.stderr}`);
  assert.match(install.stdout + install.stderr, /successfully installed/i);

  const port = await freePort();
  const server = spawn(
    node,
    [
      codeServer!,
      '--auth', 'none',
      '--bind-addr', `127.0.0.1:${port}`,
      '--disable-telemetry',
      '--disable-update-check',
      ...(trust ? [] : ['--disable-workspace-trust']),
      '--user-data-dir', userData,
      '--extensions-dir', extensions,
      options.workspace,
    ],
    { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true },
  );
  let serverOutput = '';
  const collect = (chunk: Buffer): void => {
    serverOutput = (serverOutput + chunk.toString()).slice(-20_000);
  };
  server.stdout.on('data', collect);
  server.stderr.on('data', collect);

  let browser: Browser | undefined;
  const close = async (): Promise<void> => {
    await browser?.close();
    if (server.pid !== undefined && server.exitCode === null) {
      try {
        process.kill(-server.pid, 'SIGTERM');
      } catch {
        server.kill('SIGTERM');
      }
      await sleep(500);
      try {
        process.kill(-server.pid, 'SIGKILL');
      } catch {
        // Gone.
      }
    }
  };
  try {
    await waitForHttp(`http://127.0.0.1:${port}/healthz`, 60_000, server, () => serverOutput);
    browser = await chromium.launch({ executablePath: chromiumPath!, args: ['--no-sandbox'] });
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(options.workspace)}`);
    await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
    return { page, home, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/** Saves a screenshot into test-artifacts/ (best effort). */
export async function screenshot(page: Page, name: string): Promise<void> {
  try {
    mkdirSync(artifacts, { recursive: true });
    await page.screenshot({ path: path.join(artifacts, name) });
  } catch {
    // Best effort.
  }
}

export interface DaveWindowOptions {
  /** The temporary folder's prefix (the folder holds the workspace, code-server's data and the home). */
  name: string;
  /** The workspace's folder name. */
  folder: string;
  /** Writes the workspace's files (and anything else under `root`) before VS Code opens it. */
  prepare(workspace: string, root: string): void;
  /** Added to the Dave server's environment (the fake model's). */
  env?: Record<string, string>;
  workspaceTrust?: boolean;
  /** No dave.server.command: the extension finds or installs its own server (issue 28). */
  ownServer?: boolean;
  /** code-server's PATH (see CodeServerOptions). */
  path?: string;
  /** The screenshot saved as it closes. */
  finalScreenshot: string;
}

export interface DaveWindow {
  readonly page: Page;
  readonly root: string;
  readonly workspace: string;
  /** The home of the CLI (its transcripts under `.claude/`) and of code-server. */
  readonly home: string;
  /** The final screenshot, then VS Code, the fake model and the folder go. */
  close(): Promise<void>;
}

/** A fake model and a fresh folder, opened in code-server whose Dave server is this repository's dave-lsp. */
export async function openDave(options: DaveWindowOptions): Promise<DaveWindow> {
  const root = tempDir(options.name);
  const workspace = path.join(root, options.folder);
  mkdirSync(workspace, { recursive: true });
  const fake = await startFakeModel();
  let window: CodeServerWindow | undefined;
  const close = async (): Promise<void> => {
    if (window !== undefined) await screenshot(window.page, options.finalScreenshot);
    await window?.close();
    await fake.stop();
    rmSync(root, { recursive: true, force: true });
  };
  try {
    options.prepare(workspace, root);
    const server = fakeModelOptions(fake.url, path.join(root, 'home'), workspace);
    window = await openCodeServer({
      root,
      workspace,
      workspaceTrust: options.workspaceTrust,
      ...(options.path !== undefined ? { path: options.path } : {}),
      settings: options.ownServer
        ? { 'dave.server.env': { ...server.env, ...options.env } }
        : {
            'dave.server.command': [pythonPath(), '-m', 'dave_lsp'],
            'dave.server.env': { ...server.env, ...options.env, PYTHONPATH: repoRoot },
          },
    });
  } catch (error) {
    await close();
    throw error;
  }
  return { page: window.page, root, workspace, home: window.home, close };
}

/** Opens the Dave view from the activity bar; its chat frame. */
export async function openChat(page: Page): Promise<Frame> {
  const daveTab = page.locator('.activitybar [aria-label^="Dave"]').first();
  await daveTab.waitFor({ timeout: 60_000 });
  await daveTab.click();
  return chatFrame(page, 60_000);
}

/** The chat's message box. */
export function messageBox(chat: Frame): Locator {
  return chat.locator('textarea[aria-label="Message Dave"]');
}

/**
 * Types `prompt` into the message box and presses Enter, until the chat takes it (the
 * box empties). A chat still settling as it opens keeps the text, as it does while Dave
 * answers (Enter never sends a half-typed message then): Enter again, as a user would.
 */
export async function send(chat: Frame, prompt: string): Promise<void> {
  const box = messageBox(chat);
  await box.fill(prompt);
  for (let attempt = 0; attempt < 6; attempt++) {
    await box.press('Enter');
    const deadline = Date.now() + 5_000;
    while (Date.now() < deadline) {
      if ((await box.inputValue()) === '') return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  throw new Error(`the chat never took the message ${JSON.stringify(prompt)}`);
}

/** Waits until the turn is over (Send shows again). */
export async function idle(chat: Frame, timeoutMs = 30_000): Promise<void> {
  await chat.getByRole('button', { name: 'Send', exact: true }).waitFor({ state: 'visible', timeout: timeoutMs });
}

/** Sends `prompt` and waits for the fake model's echo of it and the end of the turn. */
export async function ask(chat: Frame, prompt: string): Promise<void> {
  await send(chat, prompt);
  await chat.locator('.item.assistant', { hasText: `You said: ${prompt}` }).waitFor({ timeout: 60_000 });
  await idle(chat);
}
