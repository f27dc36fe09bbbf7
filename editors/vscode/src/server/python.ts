/**
 * Finding a Python of at least 3.11 to build the extension's own server venv
 * with (issue 28), free of `vscode`: the interpreter the Python extension has
 * selected when the caller passes it, else the first `python3` (or
 * `python3.13` ... `python`) on PATH that is new enough. Each candidate is
 * asked for its version by running it, so a shim or an old symlink cannot pass.
 */

import { execFile } from 'node:child_process';
import * as path from 'node:path';

import { findOnPath } from '../protocol/server';

export const MIN_PYTHON = [3, 11] as const;
export const MIN_PYTHON_TEXT = `${MIN_PYTHON[0]}.${MIN_PYTHON[1]}`;

export interface PythonCandidate {
  /** A path, or a name looked up on PATH. */
  command: string;
  /** Where it came from, for messages: "the Python extension's interpreter", "PATH". */
  source: string;
}

export interface PythonInfo {
  /** The interpreter's own sys.executable (absolute). */
  executable: string;
  version: string;
  source: string;
}

/** Names tried on PATH, in order, after the preferred interpreter. */
export const PATH_NAMES = ['python3', 'python3.14', 'python3.13', 'python3.12', 'python3.11', 'python'];

/** Why no candidate would do, and what to do: one line. */
export class NoPythonError extends Error {
  override name = 'NoPythonError';
}

const PROBE = 'import sys, json; print(json.dumps([sys.executable, list(sys.version_info[:3])]))';

/** Runs `command` to learn its executable and version; undefined if it does not run as a Python. */
export function probePython(
  command: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ executable: string; version: [number, number, number] } | undefined> {
  const executable = findOnPath(command, env);
  if (executable === undefined) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    // -I: the workspace's files (a cloned folder's sitecustomize, PYTHON* variables) play no part.
    execFile(executable, ['-I', '-c', PROBE], { env, timeout: 15_000, windowsHide: true }, (error, stdout) => {
      if (error) {
        resolve(undefined);
        return;
      }
      try {
        const [exe, version] = JSON.parse(stdout.trim()) as [unknown, unknown];
        if (typeof exe !== 'string' || exe === '' || !Array.isArray(version) || version.length !== 3) {
          resolve(undefined);
          return;
        }
        resolve({ executable: exe, version: version.map(Number) as [number, number, number] });
      } catch {
        resolve(undefined);
      }
    });
  });
}

function newEnough([major, minor]: readonly number[]): boolean {
  return major > MIN_PYTHON[0] || (major === MIN_PYTHON[0] && minor >= MIN_PYTHON[1]);
}

/**
 * The first candidate that is a Python of at least 3.11: `preferred` (the
 * Python extension's interpreter) first, then PATH_NAMES on `env.PATH`.
 * Rejects with a NoPythonError that names what was found.
 */
export async function findPython(
  preferred: readonly PythonCandidate[] = [],
  env: NodeJS.ProcessEnv = process.env,
): Promise<PythonInfo> {
  const tooOld: string[] = [];
  const seen = new Set<string>();
  // Every match of each name on PATH, not only the first: a broken shim must not hide /usr/bin/python3.
  const dirs = (env.PATH ?? '').split(path.delimiter).filter((d) => d !== '');
  const onPath = PATH_NAMES.flatMap((name) => dirs.map((dir) => ({ command: path.join(dir, name), name })));
  const candidates = [
    ...preferred.map((c) => ({ ...c, name: c.command })),
    ...onPath.map(({ command, name }) => ({ command, name, source: 'PATH' })),
  ];
  for (const candidate of candidates) {
    const where = findOnPath(candidate.command, env);
    if (where === undefined || seen.has(where)) continue;
    seen.add(where);
    const found = await probePython(where, env);
    if (found === undefined) continue;
    const version = found.version.join('.');
    if (newEnough(found.version)) return { executable: found.executable, version, source: candidate.source };
    if (!tooOld.includes(`${candidate.name} is ${version}`)) tooOld.push(`${candidate.name} is ${version}`);
  }
  const seenText = tooOld.length > 0 ? ` (${tooOld.join(', ')})` : ' on PATH';
  throw new NoPythonError(
    `Dave needs Python ${MIN_PYTHON_TEXT} or newer to install its server and found none${seenText}. ` +
      `Install Python ${MIN_PYTHON_TEXT}+ (or select one with the Python extension) and Retry, or set "dave.server.command".`,
  );
}
