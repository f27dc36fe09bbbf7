/**
 * The extension's own dave-lsp (issue 28), free of `vscode`: a venv in the
 * extension's global storage (`<storage>/server/venv`) made with a Python of
 * at least 3.11, into which pip installs the wheel the .vsix carries
 * (`server/dave_lsp-*.whl`; its dependencies come from the user's package
 * index, as pip is configured). A marker written last
 * (`venv/dave-install.json`) says the install finished and for which extension
 * version and wheel: a start with a current marker runs the venv with no pip;
 * a new extension version (or wheel) replaces it. A lock folder keeps two
 * windows from installing into the same venv at once.
 */

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

import { OutputTail, type ServerCommand } from '../protocol/server';
import type { PythonInfo } from './python';

export const MARKER = 'dave-install.json';

/** What the marker records about a finished install. */
export interface Installed {
  extensionVersion: string;
  wheel: string;
  wheelSha256: string;
  /** The interpreter the venv was made with, and its version. */
  python: string;
  pythonVersion: string;
  installedAt: string;
  seconds: number;
}

/** A failed or cancelled install: one line that says what to do. */
export class ProvisionError extends Error {
  override name = 'ProvisionError';
  constructor(
    message: string,
    readonly cancelled = false,
  ) {
    super(message);
  }
}

export function venvDir(storage: string): string {
  return path.join(storage, 'server', 'venv');
}

function venvPython(venv: string): string {
  return process.platform === 'win32' ? path.join(venv, 'Scripts', 'python.exe') : path.join(venv, 'bin', 'python');
}

/** How the provisioned server starts: the venv's Python running the package (no script shebangs to go stale). */
export function venvServerCommand(storage: string): ServerCommand {
  return { command: venvPython(venvDir(storage)), args: ['-m', 'dave_lsp'] };
}

/** The wheel the .vsix carries in `server/`, or undefined (a build without it). */
export function bundledWheel(extensionRoot: string): string | undefined {
  const dir = path.join(extensionRoot, 'server');
  try {
    const wheels = readdirSync(dir).filter((f) => /^dave_lsp-.+\.whl$/.test(f)).sort();
    return wheels.length > 0 ? path.join(dir, wheels[wheels.length - 1]) : undefined;
  } catch {
    return undefined;
  }
}

export function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

/** The finished install's marker, if the venv's Python is still there. */
export function readInstalled(storage: string): Installed | undefined {
  const venv = venvDir(storage);
  try {
    const marker = JSON.parse(readFileSync(path.join(venv, MARKER), 'utf8')) as Installed;
    if (typeof marker.extensionVersion !== 'string' || typeof marker.wheelSha256 !== 'string') return undefined;
    // The base interpreter it links to may have gone (an uninstalled Python): then it is not usable.
    statSync(venvPython(venv));
    return marker;
  } catch {
    return undefined;
  }
}

/** Whether `installed` is for this extension version and wheel. */
export function isCurrent(installed: Installed | undefined, extensionVersion: string, wheelSha256: string): boolean {
  return installed?.extensionVersion === extensionVersion && installed.wheelSha256 === wheelSha256;
}

export interface ProvisionOptions {
  storage: string;
  wheel: string;
  extensionVersion: string;
  python: PythonInfo;
  /** The environment pip runs in (the user's: their index settings). */
  env?: NodeJS.ProcessEnv;
  /** Every line venv and pip print (as `venv: ...`, `pip: ...`), and what this does. */
  log: (line: string) => void;
  /** A short phrase for the progress notification. */
  progress?: (message: string) => void;
  signal?: AbortSignal;
}

const LOCK_STALE_MS = 20 * 60_000;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Takes `<storage>/server/install.lock`, waiting while another live process holds it. */
async function lock(storage: string, options: ProvisionOptions): Promise<() => void> {
  const dir = path.join(storage, 'server', 'install.lock');
  mkdirSync(path.dirname(dir), { recursive: true });
  let told = false;
  for (;;) {
    try {
      mkdirSync(dir);
      writeFileSync(path.join(dir, 'pid'), String(process.pid));
      return () => rmSync(dir, { recursive: true, force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    let holder = NaN;
    let age = 0;
    try {
      holder = Number(readFileSync(path.join(dir, 'pid'), 'utf8'));
      age = Date.now() - statSync(dir).mtimeMs;
    } catch {
      // Being made or removed right now: look again.
    }
    if ((Number.isInteger(holder) && !pidAlive(holder)) || age > LOCK_STALE_MS) {
      rmSync(dir, { recursive: true, force: true });
      continue;
    }
    if (!told) {
      options.progress?.('waiting for another window that installs it');
      told = true;
    }
    if (options.signal?.aborted) throw cancelled();
    await sleep(500);
  }
}

function cancelled(): ProvisionError {
  return new ProvisionError('Installing the Dave server was cancelled. Retry, or ask again, to install it.', true);
}

/** Runs a step, its output line by line into `log` after `label:`; rejects with its last lines. */
function run(
  label: string,
  command: string,
  args: string[],
  options: ProvisionOptions,
  onLine: (line: string) => void = () => undefined,
): Promise<void> {
  return new Promise((resolve, reject) => {
    if (options.signal?.aborted) {
      reject(cancelled());
      return;
    }
    const env = { ...(options.env ?? process.env) };
    // A PYTHONHOME or PYTHONPATH meant for another Python breaks the venv's.
    delete env.PYTHONHOME;
    delete env.PYTHONPATH;
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'], windowsHide: true });
    const tail = new OutputTail(12);
    let partial = '';
    const onData = (chunk: Buffer): void => {
      tail.push(chunk);
      const lines = (partial + chunk.toString()).split(/\r?\n|\r/);
      partial = lines.pop() ?? '';
      for (const line of lines) {
        if (line.trim() === '') continue;
        options.log(`${label}: ${line}`);
        onLine(line);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const abort = (): void => {
      child.kill('SIGTERM');
    };
    options.signal?.addEventListener('abort', abort, { once: true });
    child.once('error', (error) => {
      options.signal?.removeEventListener('abort', abort);
      reject(new Error(error.message));
    });
    child.once('close', (code, signal) => {
      options.signal?.removeEventListener('abort', abort);
      if (partial.trim() !== '') options.log(`${label}: ${partial}`);
      if (options.signal?.aborted) reject(cancelled());
      else if (code === 0) resolve();
      else {
        // pip's own reason is its last ERROR line; else the last lines it wrote.
        const said = tail.text().split('\n');
        const errorLine = said.filter((l) => /^ERROR:/.test(l.trim())).pop();
        reject(new Error(`${signal ?? `exit code ${code}`}: ${(errorLine ?? tail.summary(2)).trim()}`));
      }
    });
  });
}

/** pip's line as a short progress phrase, or undefined. */
function pipPhrase(line: string): string | undefined {
  const collecting = /^Collecting (\S+)/.exec(line);
  if (collecting) return `collecting ${collecting[1]}`;
  const downloading = /^\s*Downloading (\S+?)(?:-\d[^\s]*)? \(([^)]+)\)/.exec(line);
  if (downloading) return `downloading ${path.basename(downloading[1])} (${downloading[2]})`;
  const installing = /^Installing collected packages: (.*)$/.exec(line);
  if (installing) return `installing ${installing[1].split(',').length} packages`;
  return undefined;
}

/**
 * Makes the venv and installs the wheel into it (replacing what was there),
 * then writes the marker. On failure or cancellation the half-made venv is
 * removed and a ProvisionError says what to do.
 */
export async function provision(options: ProvisionOptions): Promise<Installed> {
  const started = Date.now();
  const wheelSha256 = sha256(options.wheel);
  const release = await lock(options.storage, options);
  const venv = venvDir(options.storage);
  try {
    // Another window may have finished it while this one waited for the lock.
    const existing = readInstalled(options.storage);
    if (isCurrent(existing, options.extensionVersion, wheelSha256)) return existing!;
    rmSync(venv, { recursive: true, force: true });
    const { python } = options;
    options.progress?.(`making a venv with Python ${python.version}`);
    options.log(`Making the Dave server's venv in ${venv} with ${python.executable} (Python ${python.version}, ${python.source}).`);
    try {
      await run('venv', python.executable, ['-m', 'venv', venv], options);
    } catch (error) {
      if (error instanceof ProvisionError) throw error;
      throw new ProvisionError(
        `Dave could not make a venv with ${python.executable} (Python ${python.version}): ${(error as Error).message}. ` +
          `Install its venv module (on Debian or Ubuntu: apt install python3-venv) and Retry, or set "dave.server.command".`,
      );
    }
    options.progress?.(`installing ${path.basename(options.wheel)}`);
    options.log(`Installing ${options.wheel} and its dependencies with pip.`);
    try {
      await run(
        'pip',
        venvPython(venv),
        ['-m', 'pip', 'install', '--disable-pip-version-check', '--no-input', '--progress-bar', 'off', options.wheel],
        options,
        (line) => {
          const phrase = pipPhrase(line);
          if (phrase !== undefined) options.progress?.(phrase);
        },
      );
    } catch (error) {
      if (error instanceof ProvisionError) throw error;
      throw new ProvisionError(
        `pip could not install the Dave server (${(error as Error).message}). ` +
          `Check your network and package index (pip's output is in the Dave output), then Retry; or set "dave.server.command".`,
      );
    }
    const installed: Installed = {
      extensionVersion: options.extensionVersion,
      wheel: path.basename(options.wheel),
      wheelSha256,
      python: python.executable,
      pythonVersion: python.version,
      installedAt: new Date().toISOString(),
      seconds: Math.round((Date.now() - started) / 100) / 10,
    };
    writeFileSync(path.join(venv, MARKER), JSON.stringify(installed, null, 2));
    options.log(`The Dave server is installed (${installed.seconds} s).`);
    return installed;
  } catch (error) {
    rmSync(venv, { recursive: true, force: true });
    throw error;
  } finally {
    release();
  }
}

/** Removes the provisioned server (Reinstall Server does this first). */
export function removeInstalled(storage: string): void {
  if (existsSync(venvDir(storage))) rmSync(venvDir(storage), { recursive: true, force: true });
}
