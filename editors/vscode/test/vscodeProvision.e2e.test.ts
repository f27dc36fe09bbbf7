/**
 * The extension brings its own server, in a real VS Code (issue 28): with no
 * `dave-lsp` on PATH and no `dave.server.command`, the first question makes a
 * venv in the extension's global storage and pip installs the wheel the .vsix
 * carries (from scratch: code-server's HOME, and so pip's cache, is new; the
 * dependencies come from the package index this machine's pip uses), under a
 * progress notification and a chat status line that says so; then the chat answers. Show Server Info names it. A
 * second start (the window reloaded) reuses the venv: no pip, no progress;
 * Reinstall Server installs it again. A
 * PATH without Python 3.11+ gets one message with Retry and Open Settings.
 * Skips without the e2e tools, as vscode.e2e.test.ts does.
 */

import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';

import type { Frame, Page } from 'playwright-core';

import { ask, e2eSkip as skip, idle, openChat, openDave, screenshot, send, type DaveWindow } from './codeServer';
import { sleep, tempDir } from './helpers';

/** A real Python older than 3.11 (pyenv's), when this machine has one. */
const OLD_PYTHON = ['3.10.13', '3.9.18'].map((v) => `/root/.pyenv/versions/${v}/bin/python3`).find((p) => existsSync(p));

/** This process's PATH without the folders that hold a dave-lsp (the repo's .venv/bin, say). */
function pathWithoutDaveLsp(): string {
  return (process.env.PATH ?? '')
    .split(path.delimiter)
    .filter((dir) => dir !== '' && !existsSync(path.join(dir, 'dave-lsp')))
    .join(path.delimiter);
}

/** Every file under `dir` whose name passes `test`. */
function filesUnder(dir: string, test: (name: string) => boolean): string[] {
  const found: string[] = [];
  if (!existsSync(dir)) return found;
  for (const name of readdirSync(dir)) {
    const file = path.join(dir, name);
    if (statSync(file).isDirectory()) found.push(...filesUnder(file, test));
    else if (test(name)) found.push(file);
  }
  return found;
}

/** The Dave output channel's log files of every window code-server ran. */
function daveLogs(root: string): string[] {
  return filesUnder(path.join(root, 'user-data', 'logs'), (name) => /Dave\.log$/.test(name));
}

function toast(page: Page, text: string): ReturnType<Page['locator']> {
  return page.locator('.notification-toast', { hasText: text }).first();
}

describe('the extension installs its own server in a real VS Code', { skip }, () => {
  describe('no dave-lsp on PATH and no dave.server.command', () => {
    let dave: DaveWindow | undefined;
    let page: Page;
    let chat: Frame;
    let marker: string;

    before(async () => {
      dave = await openDave({
        name: 'e2e-own-server',
        folder: 'project',
        prepare: (workspace) => writeFileSync(path.join(workspace, 'README.md'), '# a new user\n'),
        ownServer: true,
        path: pathWithoutDaveLsp(),
        finalScreenshot: 'vscode-own-server-final.png',
      });
      page = dave.page;
    }, { timeout: 240_000 });

    after(async () => {
      await dave?.close();
    });

    it('the first question installs it from the bundled wheel under a progress notification, and the chat answers', { timeout: 420_000 }, async () => {
      chat = await openChat(page);
      const asked = Date.now();
      await send(chat, 'hello from my own server');
      await toast(page, 'Dave: installing its server').waitFor({ timeout: 60_000 });
      // The chat's status line says why the question waits.
      await chat.locator('#status', { hasText: 'Installing the Dave server (first start, about a minute)…' }).waitFor({ timeout: 30_000 });
      await screenshot(page, 'vscode-own-server-installing.png');
      await chat.locator('.item.assistant', { hasText: 'You said: hello from my own server' }).waitFor({ timeout: 360_000 });
      await idle(chat);
      const markers = filesUnder(path.join(dave!.root, 'user-data', 'User', 'globalStorage'), (n) => n === 'dave-install.json');
      assert.equal(markers.length, 1, markers.join(', '));
      marker = markers[0]!;
      const installed = JSON.parse(readFileSync(marker, 'utf8')) as { wheel: string; seconds: number; pythonVersion: string };
      assert.match(installed.wheel, /^dave_lsp-[\d.]+-py3-none-any\.whl$/);
      // The server runs from the venv's own site-packages, not from this repository.
      const venv = path.dirname(marker);
      assert.equal(filesUnder(path.join(venv, 'lib'), (n) => n === 'cli.py').some((f) => f.includes(`${path.sep}dave_lsp${path.sep}`)), true);
      const log = daveLogs(dave!.root).map((f) => readFileSync(f, 'utf8')).join('\n');
      assert.match(log, /pip: Successfully installed .*dave-lsp-/);
      assert.match(log, /Starting the Dave server \(provisioned\): .*venv\/bin\/python -m dave_lsp/);
      console.log(
        `provisioned from scratch: ${installed.seconds} s (venv + pip, Python ${installed.pythonVersion}); first question to answer ${((Date.now() - asked) / 1000).toFixed(1)} s`,
      );
    });

    it('Show Server Info names the extension’s own install and the running server', { timeout: 60_000 }, async () => {
      await page.keyboard.press('F1');
      const palette = page.locator('.quick-input-widget input');
      await palette.waitFor({ timeout: 10_000 });
      await palette.fill('>Dave: Show Server Info');
      await page.locator('.quick-input-list .monaco-list-row', { hasText: 'Show Server Info' }).first().waitFor({ timeout: 10_000 });
      await palette.press('Enter');
      const info = toast(page, 'Dave server:');
      await info.waitFor({ timeout: 20_000 });
      const text = (await info.textContent()) ?? '';
      assert.match(text, /venv\/bin\/python -m dave_lsp, from the extension's own install; running dave-lsp/);
    });

    it('a second start reuses the venv: no pip and no progress', { timeout: 240_000 }, async () => {
      const before = readFileSync(marker, 'utf8');
      const logsBefore = new Set(daveLogs(dave!.root));
      await page.reload();
      await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
      chat = await openChat(page);
      // The restored transcript, and a composer that takes a message.
      await chat.locator('.item.assistant', { hasText: 'You said: hello from my own server' }).waitFor({ timeout: 60_000 });
      await idle(chat, 60_000);
      await sleep(1000);
      await ask(chat, 'hello again');
      assert.equal(readFileSync(marker, 'utf8'), before, 'the install was not redone');
      const fresh = daveLogs(dave!.root).filter((f) => !logsBefore.has(f));
      assert.ok(fresh.length > 0, 'the reloaded window has its own Dave log');
      const log = fresh.map((f) => readFileSync(f, 'utf8')).join('\n');
      assert.match(log, /Using the Dave server installed in /);
      assert.doesNotMatch(log, /pip:/);
      assert.equal(await page.locator('.notification-toast', { hasText: 'installing its server' }).count(), 0);
    });

    it('Reinstall Server installs it again under progress, and the chat answers', { timeout: 300_000 }, async () => {
      const before = JSON.parse(readFileSync(marker, 'utf8')) as { installedAt: string };
      await page.keyboard.press('F1');
      const palette = page.locator('.quick-input-widget input');
      await palette.waitFor({ timeout: 10_000 });
      await palette.fill('>Dave: Reinstall Server');
      await page.locator('.quick-input-list .monaco-list-row', { hasText: 'Reinstall Server' }).first().waitFor({ timeout: 10_000 });
      await palette.press('Enter');
      await toast(page, 'Dave: installing its server').waitFor({ timeout: 60_000 });
      await toast(page, 'Dave: the server is reinstalled').waitFor({ timeout: 240_000 });
      const after = JSON.parse(readFileSync(marker, 'utf8')) as { installedAt: string };
      assert.notEqual(after.installedAt, before.installedAt);
      await ask(chat, 'hello after reinstalling');
    });
  });

  describe('no Python 3.11 or newer on PATH', () => {
    let dave: DaveWindow | undefined;

    before(async () => {
      // Only an older Python (when this machine has one): no python3 of 3.11+ anywhere on PATH.
      const bin = tempDir('old-python');
      if (OLD_PYTHON !== undefined) symlinkSync(OLD_PYTHON, path.join(bin, 'python3'));
      dave = await openDave({
        name: 'e2e-no-python',
        folder: 'project',
        prepare: (workspace) => writeFileSync(path.join(workspace, 'README.md'), '# no python here\n'),
        ownServer: true,
        path: bin,
        finalScreenshot: 'vscode-no-python-final.png',
      });
    }, { timeout: 240_000 });

    after(async () => {
      await dave?.close();
    });

    it('one clear message with Retry and Open Settings', { timeout: 120_000 }, async () => {
      const page = dave!.page;
      const chat = await openChat(page);
      await send(chat, 'hello without python');
      const message = toast(page, 'Dave needs Python 3.11 or newer');
      await message.waitFor({ timeout: 60_000 });
      await screenshot(page, 'vscode-no-python.png');
      const text = (await message.textContent()) ?? '';
      assert.match(text, OLD_PYTHON !== undefined ? /found none \(python3 is 3\.\d+\.\d+\)/ : /found none on PATH/);
      assert.match(text, /Install Python 3\.11\+/);
      for (const name of ['Retry', 'Open Settings']) {
        assert.equal(await message.getByRole('button', { name, exact: true }).count(), 1, name);
      }
      // One message: not a second error for the same failure.
      assert.equal(await page.locator('.notification-toast', { hasText: 'Dave needs Python' }).count(), 1);
      await idle(chat);
      // Retry tries again (still no Python) and says so once more, in one message.
      await message.getByRole('button', { name: 'Retry', exact: true }).click();
      await message.waitFor({ state: 'hidden', timeout: 10_000 });
      await toast(page, 'Dave needs Python 3.11 or newer').waitFor({ timeout: 60_000 });
      await sleep(1000);
      assert.equal(await page.locator('.notification-toast', { hasText: 'Dave needs Python' }).count(), 1);
      assert.equal(await page.locator('.notification-toast', { hasText: 'could not start' }).count(), 0);
    });
  });
});
