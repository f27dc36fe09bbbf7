/**
 * Every way the server can fail to start ends in one clear line; the default
 * command is found the way the settings describe.
 */

import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';

import {
  describeCommand,
  resolveServerCommand,
  ServerStartError,
  startStdioServer,
} from '../src/protocol/server';
import { pythonPath, repoRoot, tempDir } from './helpers';

const T = { timeout: 60_000 };

describe('starting the server', () => {
  it('a command that is not on PATH names the command and the setting', T, async () => {
    await assert.rejects(
      startStdioServer({ command: { command: 'dave-lsp-does-not-exist', args: [] } }),
      (error: Error) => {
        assert.ok(error instanceof ServerStartError);
        assert.match(error.message, /"dave-lsp-does-not-exist" was not found on PATH/);
        assert.match(error.message, /dave\.server\.command/);
        assert.ok(!error.message.includes('\n'));
        return true;
      },
    );
  });

  it('a path that does not exist says so', T, async () => {
    await assert.rejects(
      startStdioServer({ command: { command: '/nonexistent/bin/dave-lsp', args: [] } }),
      /"\/nonexistent\/bin\/dave-lsp" does not exist or is not executable/,
    );
  });

  it('a server that exits at once reports its exit code and last words', T, async () => {
    await assert.rejects(
      startStdioServer({
        command: {
          command: pythonPath(),
          args: ['-c', 'import sys; sys.stderr.write("ModuleNotFoundError: No module named dave_lsp\\n"); sys.exit(3)'],
        },
      }),
      (error: Error) => {
        assert.ok(error instanceof ServerStartError);
        assert.match(error.message, /exited with code 3 before it answered initialize/);
        assert.match(error.message, /No module named dave_lsp/);
        return true;
      },
    );
  });

  it('a server that never answers initialize times out', T, async () => {
    await assert.rejects(
      startStdioServer({
        command: { command: pythonPath(), args: ['-c', 'import time; time.sleep(30)'] },
        initializeTimeoutMs: 1500,
      }),
      /did not answer initialize within 2 s/,
    );
  });

  it('a wrong initialization option is an initialize error naming the field', T, async () => {
    await assert.rejects(
      startStdioServer({
        command: { command: pythonPath(), args: ['-m', 'dave_lsp'] },
        cwd: repoRoot,
        initializationOptions: { permissionMode: 42 as unknown as 'default' },
      }),
      (error: Error) => {
        assert.ok(error instanceof ServerStartError, String(error));
        assert.match(error.message, /permissionMode/);
        return true;
      },
    );
  });

  it('resolves the configured command, else dave-lsp on PATH, else python3 -m dave_lsp', () => {
    assert.deepEqual(resolveServerCommand(['/opt/venv/bin/python', '-m', 'dave_lsp']), {
      command: '/opt/venv/bin/python',
      args: ['-m', 'dave_lsp'],
    });
    assert.deepEqual(resolveServerCommand('dave-lsp --log-level debug'), {
      command: 'dave-lsp',
      args: ['--log-level', 'debug'],
    });
    const empty = tempDir('path');
    assert.deepEqual(resolveServerCommand([], { PATH: empty }), { command: 'python3', args: ['-m', 'dave_lsp'] });
    const bin = path.join(empty, 'bin');
    mkdirSync(bin);
    writeFileSync(path.join(bin, 'dave-lsp'), '#!/bin/sh\n');
    chmodSync(path.join(bin, 'dave-lsp'), 0o755);
    assert.deepEqual(resolveServerCommand(undefined, { PATH: bin }), { command: 'dave-lsp', args: [] });
    assert.equal(describeCommand({ command: 'python3', args: ['-c', 'print(1)'] }), "python3 -c 'print(1)'");
  });
});
