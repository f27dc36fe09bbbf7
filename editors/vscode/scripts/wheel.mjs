// Puts the dave-lsp wheel into server/ for the .vsix (issue 28): the extension
// installs its own server from it. DAVE_WHEEL names a built wheel (scripts/package.sh
// passes the one it built into dist/); else the wheel is built from the repository
// with DAVE_LSP_PYTHON (default: the repo's .venv, else python3) through setuptools'
// PEP 517 hook, which needs no network.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const repo = join(root, '..', '..');
const target = join(root, 'server');

let wheel = process.env.DAVE_WHEEL;
let built;
if (!wheel) {
  const venvPython = join(repo, '.venv', 'bin', 'python');
  const python = process.env.DAVE_LSP_PYTHON || (existsSync(venvPython) ? venvPython : 'python3');
  built = mkdtempSync(join(tmpdir(), 'dave-wheel-'));
  const name = execFileSync(
    python,
    ['-c', 'import sys; from setuptools import build_meta as b; print(b.build_wheel(sys.argv[1]))', built],
    { cwd: repo, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
  )
    .trim()
    .split('\n')
    .pop();
  wheel = join(built, name);
}
if (!/^dave_lsp-.+\.whl$/.test(basename(wheel)) || !existsSync(wheel)) {
  console.error(`wheel.mjs: no dave-lsp wheel at ${wheel}`);
  process.exit(1);
}
rmSync(target, { recursive: true, force: true });
mkdirSync(target);
copyFileSync(wheel, join(target, basename(wheel)));
if (built) rmSync(built, { recursive: true, force: true });
console.log(`wheel.mjs: server/${readdirSync(target).join(', ')}`);
