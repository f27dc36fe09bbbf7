// Bundles the extension (Node, CommonJS, `vscode` external) and the webview
// script (browser, IIFE) into dist/; with --tests also every test/*.test.ts into
// out/test/ for `node --test`; --tests-only builds the tests and leaves dist/
// (perhaps the production bundle just packaged) alone.
import { build } from 'esbuild';
import { readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const production = args.includes('--production');
const testsOnly = args.includes('--tests-only');
const tests = testsOnly || args.includes('--tests');

const common = {
  bundle: true,
  logLevel: 'warning',
  sourcemap: production ? false : 'linked',
  minify: production,
  absWorkingDir: root,
  legalComments: 'none',
};

if (!testsOnly) {
  rmSync(join(root, 'dist'), { recursive: true, force: true });
  await Promise.all([
    build({
      ...common,
      entryPoints: ['src/extension.ts'],
      outfile: 'dist/extension.js',
      platform: 'node',
      format: 'cjs',
      target: 'node18',
      external: ['vscode'],
    }),
    build({
      ...common,
      entryPoints: ['src/webview/main.ts'],
      outfile: 'dist/webview.js',
      platform: 'browser',
      format: 'iife',
      target: 'es2020',
    }),
  ]);
}

if (tests) {
  rmSync(join(root, 'out'), { recursive: true, force: true });
  const entryPoints = readdirSync(join(root, 'test'))
    .filter((f) => f.endsWith('.test.ts'))
    .map((f) => `test/${f}`);
  await build({
    ...common,
    sourcemap: 'inline',
    minify: false,
    entryPoints,
    outdir: 'out/test',
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    // jsdom loads files at run time; playwright-core is installed only for e2e.
    external: ['jsdom', 'playwright-core', 'vscode'],
  });
}
