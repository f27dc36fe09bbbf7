/**
 * Reviewing changes (docs/protocol.md, "Reviewing changes"): what a turn
 * changed (a query's `changes`, `dave/changes`) and `dave/revertChanges`.
 */

import type { OpenString } from './types';

/** One file a turn's file tools changed (a query result's `changes`, issue 14). */
export interface ChangeSummary {
  path: string;
  status: OpenString<'created' | 'modified' | 'deleted'>;
  added: number;
  removed: number;
  /** A side is not text: listed with 0/0 counts. */
  binary?: boolean;
  /** A side was over 1 MiB and kept only as a hash. */
  truncated?: boolean;
}

/** `dave/changes` params: `turn` defaults to the last turn that changed files. */
export interface ChangesParams {
  sessionId: string;
  turn?: number;
}

export interface ChangedFile extends ChangeSummary {
  /** The texts before and after the turn; null for a missing, binary or large file. */
  before: string | null;
  after: string | null;
  diff: string;
}

export interface ChangesResult {
  sessionId: string;
  /** null when no turn changed files. */
  turn: number | null;
  files: ChangedFile[];
}

export interface HunkRef {
  path: string;
  /** Counts from 0 over that file's `@@` hunks in `dave/changes`' diff. */
  index: number;
}

export interface RevertChangesParams {
  sessionId: string;
  turn?: number;
  paths?: string[];
  hunks?: HunkRef[];
}

export interface RevertConflict {
  path: string;
  message: string;
}

export interface RevertChangesResult {
  reverted: string[];
  conflicts: RevertConflict[];
}
