/**
 * The extension's own server (issue 28) without VS Code, against real Pythons
 * and a real pip: which server is chosen, finding a Python of at least 3.11 on
 * PATH (or the one the caller prefers), the one-line message when there is
 * none, and an install that pip refuses or the user cancels leaving no venv
 * behind. The install that succeeds runs in the real VS Code
 * (vscodeProvision.e2e.test.ts).
 */

import assert from 'node:assert/strict';
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';

import { chooseServer, installMode } from '../src/server/choose';
import { bundledWheel, isCurrent, provision, ProvisionError, readInstalled, venvDir, venvServerCommand } from '../src/server/provision';
import { findPython, NoPythonError, type PythonInfo } from '../src/server/python';
import { extensionRoot, pythonPath, tempDir } from './helpers';

/** A real Python older than 3.11 (pyenv's), when this machine has one. */
const OLD_PYTHON = ['3.10.13', '3.9.18'].map((v) => `/root/.pyenv/versions/${v}/bin/python3`).find((p) => existsSync(p));

/** A folder for PATH holding `name` as a link to `target`. */
function pathWith(links: Record<string, string>): string {
  const dir = tempDir('pathdir');
  for (const [name, target] of Object.entries(links)) symlinkSync(target, path.join(dir, name));
  return dir;
}

describe('which server starts', () => {
  const path_ = { command: 'dave-lsp', args: [] };
  const fallback = { command: 'python3', args: ['-m', 'dave_lsp'] };
  const mine = { command: '/opt/dave/bin/dave-lsp', args: [] };

  it('the setting wins, then dave-lsp on PATH, else the extension installs its own', () => {
    assert.deepEqual(chooseServer(mine, true, 'always'), { command: mine, origin: 'setting' });
    assert.deepEqual(chooseServer(path_, false, 'auto'), { command: path_, origin: 'path' });
    assert.equal(chooseServer(fallback, false, 'auto'), 'provision');
    assert.equal(chooseServer(path_, false, 'always'), 'provision');
    assert.deepEqual(chooseServer(fallback, false, 'never'), { command: fallback, origin: 'fallback' });
    assert.equal(installMode('always'), 'always');
    assert.equal(installMode('sometimes'), 'auto');
    assert.equal(installMode(undefined), 'auto');
  });
});

describe('finding a Python of at least 3.11', () => {
  it('takes the first new enough python3 on PATH, by running it, past a broken shim', { timeout: 30_000 }, async () => {
    const shims = tempDir('shims');
    writeFileSync(path.join(shims, 'python3'), '#!/bin/sh\necho "pyenv: python3: command not found" >&2\nexit 127\n', { mode: 0o755 });
    const dir = pathWith({ python3: pythonPath() });
    const found = await findPython([], { PATH: `${shims}${path.delimiter}${dir}` });
    assert.match(found.version, /^3\.(1[1-9]|[2-9]\d)\.\d+$/);
    assert.ok(path.isAbsolute(found.executable), found.executable);
    assert.equal(found.source, 'PATH');
  });

  it('prefers the interpreter it is given (the Python extension’s), skipping one that does not run', { timeout: 30_000 }, async () => {
    const dir = pathWith({ python3: pythonPath() });
    const broken = path.join(dir, 'not-python');
    writeFileSync(broken, '#!/bin/sh\nexit 1\n', { mode: 0o755 });
    const found = await findPython(
      [
        { command: broken, source: 'a broken one' },
        { command: pythonPath(), source: "the Python extension's interpreter" },
      ],
      { PATH: dir },
    );
    assert.equal(found.source, "the Python extension's interpreter");
  });

  it('with only an older Python, one line names it and says what to do', { timeout: 30_000, skip: OLD_PYTHON ? false : 'no Python < 3.11 here' }, async () => {
    const dir = pathWith({ python3: OLD_PYTHON! });
    await assert.rejects(findPython([], { PATH: dir }), (error: Error) => {
      assert.ok(error instanceof NoPythonError);
      assert.match(error.message, /^Dave needs Python 3\.11 or newer to install its server and found none \(python3 is 3\.\d+\.\d+\)\./);
      assert.match(error.message, /Install Python 3\.11\+ .* and Retry, or set "dave\.server\.command"\.$/);
      assert.ok(!error.message.includes('\n'));
      return true;
    });
  });

  it('with no Python on PATH at all, says so', { timeout: 30_000 }, async () => {
    await assert.rejects(findPython([], { PATH: tempDir('empty') }), /found none on PATH\. Install Python 3\.11\+/);
  });
});

describe('installing the server into a venv', () => {
  async function python(): Promise<PythonInfo> {
    return findPython([{ command: pythonPath(), source: 'test' }], { PATH: '' });
  }

  it('a wheel pip refuses: one line with pip’s reason, and no venv or marker left', { timeout: 120_000 }, async () => {
    const storage = tempDir('storage');
    const wheel = path.join(tempDir('wheel'), 'dave_lsp-0.0.1-py3-none-any.whl');
    writeFileSync(wheel, 'not a zip');
    const lines: string[] = [];
    await assert.rejects(
      provision({ storage, wheel, extensionVersion: '0.0.1', python: await python(), log: (l) => lines.push(l) }),
      (error: Error) => {
        assert.ok(error instanceof ProvisionError, String(error));
        assert.equal(error.cancelled, false);
        assert.match(error.message, /^pip could not install the Dave server \(exit code 1: ERROR: .+\)\. Check your network and package index/);
        assert.ok(!error.message.includes('\n'));
        return true;
      },
    );
    assert.ok(lines.some((l) => l.startsWith('pip: ERROR:')), 'pip’s output reached the log');
    assert.ok(lines.some((l) => l.startsWith("Making the Dave server's venv")), lines[0]);
    assert.equal(existsSync(venvDir(storage)), false, 'the half-made venv was removed');
    assert.equal(readInstalled(storage), undefined);
    assert.equal(existsSync(path.join(storage, 'server', 'install.lock')), false, 'the lock was released');
  });

  const wheel = bundledWheel(extensionRoot);
  const noWheel = wheel === undefined ? 'no server/dave_lsp-*.whl: run npm run package' : false;

  it('cancelled while pip runs: the install stops, says so, and leaves nothing', { timeout: 120_000, skip: noWheel }, async () => {
    const storage = tempDir('storage');
    assert.ok(wheel);
    const abort = new AbortController();
    const phrases: string[] = [];
    const started = Date.now();
    let cancelledAt = 0;
    await assert.rejects(
      provision({
        storage,
        wheel,
        extensionVersion: '0.0.1',
        python: await python(),
        log: () => undefined,
        progress: (message) => {
          phrases.push(message);
          // Cancel once pip is at work.
          if (message.startsWith('installing') && cancelledAt === 0) {
            cancelledAt = Date.now();
            setTimeout(() => abort.abort(), 300);
          }
        },
        signal: abort.signal,
      }),
      (error: Error) => {
        assert.ok(error instanceof ProvisionError);
        assert.equal(error.cancelled, true);
        assert.match(error.message, /^Installing the Dave server was cancelled\. Retry/);
        return true;
      },
    );
    assert.ok(Date.now() - cancelledAt < 10_000, `it stopped ${Date.now() - cancelledAt} ms after the cancel`);
    assert.ok(phrases[0]?.startsWith('making a venv with Python 3.'), phrases.join(' | '));
    assert.equal(existsSync(venvDir(storage)), false);
    assert.equal(readInstalled(storage), undefined);
    assert.ok(Date.now() - started < 100_000);
  });

  it('a marker for another extension version or wheel is not current', () => {
    const storage = tempDir('storage');
    const venv = venvDir(storage);
    mkdirSync(path.join(venv, 'bin'), { recursive: true });
    symlinkSync(pythonPath(), path.join(venv, 'bin', 'python'));
    const marker = {
      extensionVersion: '0.1.0',
      wheel: 'dave_lsp-0.1.0-py3-none-any.whl',
      wheelSha256: 'abc',
      python: pythonPath(),
      pythonVersion: '3.11.7',
      installedAt: new Date().toISOString(),
      seconds: 1,
    };
    writeFileSync(path.join(venv, 'dave-install.json'), JSON.stringify(marker));
    const installed = readInstalled(storage);
    assert.deepEqual(installed, marker);
    assert.equal(isCurrent(installed, '0.1.0', 'abc'), true);
    assert.equal(isCurrent(installed, '0.2.0', 'abc'), false, 'a new extension version replaces it');
    assert.equal(isCurrent(installed, '0.1.0', 'def'), false, 'a new wheel replaces it');
    assert.deepEqual(venvServerCommand(storage), { command: path.join(venv, 'bin', 'python'), args: ['-m', 'dave_lsp'] });
  });
});
