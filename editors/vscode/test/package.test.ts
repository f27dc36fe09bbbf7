/**
 * The built .vsix (a zip): it holds the bundle, the manifest with every
 * contributed command, view and setting, and nothing else — no node_modules,
 * sources or source maps. Run after `npm run package`.
 */

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { builtinModules, createRequire } from 'node:module';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { compileFunction } from 'node:vm';
import { inflateRawSync } from 'node:zlib';

import { RESTRICTED_SETTINGS } from '../src/editor/trust';
import { extensionRoot } from './helpers';

const VSIX = process.env.DAVE_VSIX ?? path.join(extensionRoot, 'dave-lsp.vsix');

/** Reads every entry of a zip through its central directory. */
function readZip(file: string): Map<string, Buffer> {
  const zip = readFileSync(file);
  let eocd = -1;
  for (let i = zip.length - 22; i >= Math.max(0, zip.length - 65_557); i--) {
    if (zip.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  assert.ok(eocd >= 0, 'a zip end-of-central-directory record');
  const count = zip.readUInt16LE(eocd + 10);
  let offset = zip.readUInt32LE(eocd + 16);
  const entries = new Map<string, Buffer>();
  for (let n = 0; n < count; n++) {
    assert.equal(zip.readUInt32LE(offset), 0x02014b50, 'a central directory header');
    const method = zip.readUInt16LE(offset + 10);
    const compressedSize = zip.readUInt32LE(offset + 20);
    const nameLength = zip.readUInt16LE(offset + 28);
    const extraLength = zip.readUInt16LE(offset + 30);
    const commentLength = zip.readUInt16LE(offset + 32);
    const localOffset = zip.readUInt32LE(offset + 42);
    const name = zip.toString('utf8', offset + 46, offset + 46 + nameLength);
    const localNameLength = zip.readUInt16LE(localOffset + 26);
    const localExtraLength = zip.readUInt16LE(localOffset + 28);
    const start = localOffset + 30 + localNameLength + localExtraLength;
    const raw = zip.subarray(start, start + compressedSize);
    entries.set(name, method === 0 ? Buffer.from(raw) : inflateRawSync(raw));
    offset += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}

interface Manifest {
  name: string;
  publisher: string;
  main: string;
  engines: { vscode: string };
  contributes: {
    commands: Array<{ command: string; title: string; category?: string }>;
    viewsContainers: { activitybar: Array<{ id: string; title: string; icon: string }> };
    views: Record<string, Array<{ id: string; type?: string; name: string }>>;
    configuration: { properties: Record<string, unknown> };
  };
}

describe('the .vsix package', { skip: existsSync(VSIX) ? false : `no ${VSIX}: run npm run package` }, () => {
  const entries = existsSync(VSIX) ? readZip(VSIX) : new Map<string, Buffer>();
  const manifest = JSON.parse(entries.get('extension/package.json')?.toString() ?? '{}') as Manifest;

  it('holds the bundle, the webview, its media and the manifest', () => {
    for (const name of [
      'extension.vsixmanifest',
      'extension/package.json',
      'extension/readme.md',
      'extension/dist/extension.js',
      'extension/dist/webview.js',
      'extension/media/chat.css',
      'extension/media/dave.svg',
    ]) {
      assert.ok(entries.has(name), `${name} in ${[...entries.keys()].join(', ')}`);
    }
    assert.ok(entries.has(`extension/${manifest.main.replace(/^\.\//, '')}`), 'main points into the package');
  });

  it('carries the dave-lsp wheel the extension installs its own server from (issue 28)', () => {
    const wheels = [...entries.keys()].filter((name) => name.startsWith('extension/server/'));
    assert.equal(wheels.length, 1, wheels.join(', '));
    assert.match(wheels[0], /^extension\/server\/dave_lsp-[\d.]+-py3-none-any\.whl$/);
    const wheel = entries.get(wheels[0])!;
    assert.equal(wheel.readUInt32LE(0), 0x04034b50, 'the wheel is a zip');
  });

  it('has no node_modules, sources, tests or source maps', () => {
    for (const name of entries.keys()) {
      assert.doesNotMatch(name, /node_modules|\/src\/|\/test\/|\.ts$|\.map$|\.vsix$|tsconfig/, name);
    }
    const total = [...entries.values()].reduce((sum, b) => sum + b.length, 0);
    assert.ok(total < 2_000_000, `unpacked size ${total} bytes`);
    assert.ok(entries.size <= 12, `${entries.size} files`);
  });

  it('contributes every command, the Dave view and the settings', () => {
    const commands = Object.fromEntries(manifest.contributes.commands.map((c) => [c.command, `${c.category}: ${c.title}`]));
    assert.deepEqual(commands, {
      'dave.openChat': 'Dave: Open Chat',
      'dave.askAboutSelection': 'Dave: Ask Dave About Selection',
      'dave.cancel': 'Dave: Cancel',
      'dave.newSession': 'Dave: New Session',
      'dave.deleteSession': 'Dave: Delete Session',
      'dave.restartServer': 'Dave: Restart Server',
      'dave.reinstallServer': 'Dave: Reinstall Server',
      'dave.showServerInfo': 'Dave: Show Server Info',
      'dave.manageRules': 'Dave: Manage Permission Rules',
      'dave.acceptProposal': 'Dave: Accept',
      'dave.rejectProposal': 'Dave: Reject',
      'dave.reviewLastChanges': 'Dave: Review Last Changes',
      'dave.undoLastChanges': 'Dave: Undo Last Changes',
    });
    // Accept and Reject sit on the title of a proposal's diff editor, and only there.
    const menus = (manifest.contributes as unknown as { menus: Record<string, Array<{ command: string; when?: string }>> }).menus;
    assert.deepEqual(
      menus['editor/title']?.map((m) => [m.command, m.when]),
      [
        ['dave.acceptProposal', 'resourceScheme == dave-proposal'],
        ['dave.rejectProposal', 'resourceScheme == dave-proposal'],
      ],
    );
    // Ask Dave About Selection is in the editor's context menu; the chat has one "New session" (its own button).
    assert.deepEqual(menus['editor/context']?.map((m) => [m.command, m.when]), [['dave.askAboutSelection', 'editorHasSelection']]);
    assert.equal(menus['view/title'], undefined);
    // Ctrl+Alt+D opens the chat: free in VS Code's defaults (Ctrl+Alt+I is Copilot's Open Chat).
    const keys = (manifest.contributes as unknown as { keybindings: Array<{ command: string; key: string; mac?: string }> }).keybindings;
    assert.deepEqual(keys, [{ command: 'dave.openChat', key: 'ctrl+alt+d', mac: 'ctrl+alt+d' }]);
    const container = manifest.contributes.viewsContainers.activitybar.find((c) => c.id === 'dave');
    assert.equal(container?.title, 'Dave');
    assert.ok(entries.has(`extension/${container.icon}`), 'the container icon ships');
    assert.deepEqual(manifest.contributes.views.dave, [{ type: 'webview', id: 'dave.chat', name: 'Chat' }]);
    assert.deepEqual(Object.keys(manifest.contributes.configuration.properties).sort(), [
      'dave.backend',
      'dave.context.activeFile',
      'dave.model',
      'dave.permissionMode',
      'dave.server.command',
      'dave.server.env',
      'dave.server.install',
    ]);
    const vsixManifest = entries.get('extension.vsixmanifest')!.toString();
    assert.match(vsixManifest, /Id="dave-lsp"/);
    assert.match(vsixManifest, /Publisher="dave-lsp"/);
  });

  it('runs limited in Restricted Mode: a folder cannot set the server command, its environment or the permission mode', () => {
    // Without this capability VS Code disables the extension in an untrusted workspace (issue 24).
    const capabilities = (manifest as unknown as {
      capabilities?: { untrustedWorkspaces?: { supported?: unknown; description?: string; restrictedConfigurations?: string[] } };
    }).capabilities;
    const untrusted = capabilities?.untrustedWorkspaces;
    assert.equal(untrusted?.supported, 'limited');
    assert.match(untrusted?.description ?? '', /Claude Code settings .*not loaded until you trust/);
    assert.match(untrusted?.description ?? '', /whether the extension installs its own server \(dave\.server\.install;/);
    // The same keys the extension itself reads from the user's settings only when untrusted.
    assert.deepEqual(untrusted?.restrictedConfigurations, RESTRICTED_SETTINGS.map((key) => `dave.${key}`));
    for (const key of untrusted?.restrictedConfigurations ?? []) {
      assert.ok(key in manifest.contributes.configuration.properties, `${key} is a contributed setting`);
    }
  });

  it('bundles its dependencies: the extension requires only vscode and Node built-ins', () => {
    const bundle = entries.get('extension/dist/extension.js')!.toString();
    const required = new Set([...bundle.matchAll(/require\(["']([^"']+)["']\)/g)].map((m) => m[1]));
    const builtins = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);
    const foreign = [...required].filter((m) => m !== 'vscode' && !builtins.has(m));
    assert.deepEqual(foreign, []);
    assert.ok(required.has('vscode'));
    const webview = entries.get('extension/dist/webview.js')!.toString();
    assert.doesNotMatch(webview, /\brequire\(["']/, 'the webview script is self-contained');
  });

  it('the bundle loads and exports activate and deactivate', () => {
    const bundle = entries.get('extension/dist/extension.js')!.toString();
    // A stand-in for the `vscode` module: any property is a constructible function.
    const stub: unknown = new Proxy(function vscodeStub() {}, {
      get: (_target, prop) => (prop === 'then' ? undefined : stub),
      apply: () => stub,
      construct: () => ({}),
    });
    const module = { exports: {} as Record<string, unknown> };
    const load = compileFunction(bundle, ['module', 'exports', 'require', '__filename', '__dirname']) as (
      ...args: [typeof module, Record<string, unknown>, (id: string) => unknown, string, string]
    ) => void;
    const nodeRequire = createRequire(__filename);
    const req = (id: string): unknown => (id === 'vscode' ? stub : nodeRequire(id));
    load(module, module.exports, req, '/ext/dist/extension.js', '/ext/dist');
    assert.equal(typeof module.exports.activate, 'function');
    assert.equal(typeof module.exports.deactivate, 'function');
  });
});
