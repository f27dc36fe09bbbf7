/**
 * Reviewing changes (issue 14, docs/protocol.md "Reviewing changes") without
 * `vscode`: the pure helpers the reducer and the controller share, and
 * ProposalReview, which keeps one diff editor per permission request that
 * carries a `proposal`.
 *
 * ProposalReview owns no permission state. The PermissionLedger does: every
 * change of a request reaches `changed()` from the ledger (through the query's
 * listener, like the request's card), so the editor opens while the request is
 * pending and closes however it stops being pending (answered here or on the
 * card, denied by the mode, allowed by a rule, expired). Answers go back
 * through ChatController.answerPermission, i.e. through the ledger, once. The
 * editor itself (extension.ts wires vscode's diff editor in) is a ProposalView.
 */

import * as path from 'node:path';

import type { ChangeSummary, RevertChangesResult } from '../protocol/changeTypes';
import type { PendingPermission } from '../protocol/permissions';
import type { Proposal } from '../protocol/progressTypes';
import type { ChangedFileRow, ChatItem, ProposalCardInfo } from '../shared/messages';

export type ChangesItem = Extract<ChatItem, { kind: 'changes' }>;

/** `file` relative to `cwd` when it lies inside it, else as it is. */
export function relativeLabel(file: string, cwd: string | undefined): string {
  if (cwd === undefined || cwd === '' || !path.isAbsolute(file)) return file;
  const rel = path.relative(cwd, file);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : file;
}

/** The title of a proposal's diff editor, e.g. `notes.txt (Dave's proposal)`. */
export function proposalTitle(proposal: Proposal): string {
  return `${path.basename(proposal.path)} (Dave's proposal)`;
}

/** The proposal can be edited before accepting: both whole texts came. */
export function isEditable(proposal: Proposal): boolean {
  return typeof proposal.original === 'string' && typeof proposal.proposed === 'string';
}

export function proposalCardInfo(proposal: Proposal, cwd: string | undefined): ProposalCardInfo {
  const file = relativeLabel(proposal.path, cwd);
  if (isEditable(proposal)) {
    return {
      file,
      editable: true,
      viewable: true,
      note: `${proposal.exists ? 'The change' : 'The new file'} is open in a diff editor: edit the right side, or revert blocks of it, before you allow it. Allow accepts the right side as it is then.`,
    };
  }
  if (proposal.binary === true) return { file, editable: false, viewable: false, note: 'A binary file: there is nothing to show. Answer here.' };
  if (proposal.diff !== '') {
    return {
      file,
      editable: false,
      viewable: true,
      note: 'Too large to edit before accepting: its diff is shown read-only. Answer here.',
    };
  }
  return { file, editable: false, viewable: false, note: 'Too large to show. Answer here.' };
}

/** There is something to show: both texts, or a diff. */
export function viewable(proposal: Proposal): boolean {
  return isEditable(proposal) || (proposal.binary !== true && proposal.diff !== '');
}

/**
 * The user's version of the proposal to send as `editedContent`: only when it
 * differs from `proposed`. An editor that only changed how lines end (it keeps
 * one end-of-line per document) did not edit it.
 */
export function editedContent(proposal: Proposal | undefined, text: string | undefined): string | undefined {
  if (proposal === undefined || !isEditable(proposal) || text === undefined) return undefined;
  return sameLines(text, proposal.proposed!) ? undefined : text;
}

/** The same text but for how its lines end (an editor keeps one end-of-line per document). */
export function sameLines(a: string, b: string): boolean {
  const lf = (t: string): string => t.replace(/\r\n/g, '\n');
  return lf(a) === lf(b);
}

/** A row of the "N files changed" item. */
export function changedFileRow(change: ChangeSummary, cwd: string | undefined): ChangedFileRow {
  return {
    path: change.path,
    label: relativeLabel(change.path, cwd),
    status: String(change.status),
    added: typeof change.added === 'number' ? change.added : 0,
    removed: typeof change.removed === 'number' ? change.removed : 0,
    ...(change.binary === true ? { binary: true } : {}),
    ...(change.truncated === true ? { truncated: true } : {}),
  };
}

export function changesHeadline(files: readonly { path: string }[]): string {
  return files.length === 1 ? '1 file changed' : `${files.length} files changed`;
}

/** The `@@` hunks of a unified diff, numbered from 0 as `dave/revertChanges` counts them. */
export function diffHunks(diff: string): Array<{ index: number; header: string; firstChange: string }> {
  const hunks: Array<{ index: number; header: string; firstChange: string }> = [];
  for (const line of diff.split('\n')) {
    if (line.startsWith('@@')) {
      hunks.push({ index: hunks.length, header: line.replace(/\r$/, ''), firstChange: '' });
    } else {
      const hunk = hunks.at(-1);
      if (hunk !== undefined && hunk.firstChange === '' && /^[+-]/.test(line) && !/^(\+\+\+|---) /.test(line)) {
        hunk.firstChange = line.replace(/\r$/, '').slice(0, 80);
      }
    }
  }
  return hunks;
}

function samePath(a: string, b: string, cwd: string | undefined): boolean {
  const abs = (p: string): string => (path.isAbsolute(p) || cwd === undefined ? path.normalize(p) : path.resolve(cwd, p));
  return abs(a) === abs(b);
}

/**
 * The row after an Undo: reverted files marked, conflicts with their messages.
 * After an Undo of hunks (`hunksOnly`) a listed file is only partly undone, so
 * it is not marked; the note says which changes went.
 */
export function afterRevert(
  item: ChangesItem,
  result: RevertChangesResult,
  cwd: string | undefined,
  hunksOnly = false,
): ChangesItem {
  const files = item.files.map((f): ChangedFileRow => {
    const conflict = result.conflicts.find((c) => samePath(c.path, f.path, cwd));
    if (conflict !== undefined) return { ...f, conflict: conflict.message || 'Not undone: the file changed since.' };
    if (!hunksOnly && result.reverted.some((p) => samePath(p, f.path, cwd))) {
      const rest = { ...f, reverted: true };
      delete rest.conflict;
      return rest;
    }
    return f;
  });
  const parts: string[] = [];
  if (result.reverted.length > 0) {
    const names = result.reverted.map((p) => relativeLabel(p, cwd)).join(', ');
    parts.push(hunksOnly ? `Undone: the chosen change in ${names}.` : `Undone: ${names}.`);
  }
  if (result.conflicts.length > 0) {
    parts.push(`Not undone (changed since): ${result.conflicts.map((c) => relativeLabel(c.path, cwd)).join(', ')}.`);
  }
  if (parts.length === 0) parts.push('Nothing to undo.');
  return { ...item, files, note: parts.join(' ') };
}

// ---- the proposal's editor ---------------------------------------------

/** What the diff editor of one proposal shows. */
export interface ProposalDocument {
  requestId: string;
  /** The file's absolute path. */
  path: string;
  /** e.g. `notes.txt (Dave's proposal)`. */
  title: string;
  exists: boolean;
  /** Both texts: the left side (read-only) and the right side (editable). */
  original?: string;
  proposed?: string;
  /** The unified diff, shown read-only when there are no whole texts. */
  diff: string;
  binary: boolean;
}

/** The editor side: vscode's diff editor in the extension, a stub in tests. */
export interface ProposalView {
  /** Opens the proposal's diff editor (or its diff read-only); again after the user closed it. */
  open(document: ProposalDocument): Promise<void>;
  /** Closes it, dropping its edits (the answer has gone already). */
  close(requestId: string): Promise<void>;
  /** The right side's text now, edits included; undefined when there is none. */
  text(requestId: string): string | undefined;
}

export class ProposalReview {
  /** Pending requests with a proposal, by request id. */
  private readonly open = new Map<string, PendingPermission>();

  constructor(
    private readonly view: ProposalView,
    private readonly log: (message: string) => void = () => undefined,
  ) {}

  /** A request changed in the ledger: opens its editor once pending, closes it when no longer pending. */
  changed(permission: PendingPermission): void {
    const proposal = permission.proposal;
    if (proposal === undefined) return;
    const id = permission.requestId;
    if (permission.state === 'pending') {
      if (this.open.has(id)) return;
      this.open.set(id, permission);
      // A binary file, or one too big for a diff, has nothing to show: its card says so.
      if (viewable(proposal)) this.show(permission);
      return;
    }
    if (!this.open.has(id)) return;
    this.open.delete(id);
    this.view.close(id).catch((error: unknown) => this.log(`dave: closing the proposal of ${id}: ${String(error)}`));
  }

  /** Opens a pending request's editor again (the card's "Show diff"); false when it is not pending here. */
  reopen(requestId: string): boolean {
    const permission = this.open.get(requestId);
    if (permission?.proposal === undefined || !viewable(permission.proposal)) return false;
    this.show(permission);
    return true;
  }

  /** Whether the request still waits with a proposal (the editor's Accept and Reject ask). */
  has(requestId: string): boolean {
    return this.open.has(requestId);
  }

  /** What an allow of this request carries as `editedContent`: the right side when the user changed it. */
  editedContent(requestId: string): string | undefined {
    const permission = this.open.get(requestId);
    if (permission === undefined) return undefined;
    return editedContent(permission.proposal, this.view.text(requestId));
  }

  private show(permission: PendingPermission): void {
    const proposal = permission.proposal!;
    const document: ProposalDocument = {
      requestId: permission.requestId,
      path: proposal.path,
      title: proposalTitle(proposal),
      exists: proposal.exists,
      diff: proposal.diff,
      binary: proposal.binary === true,
      ...(isEditable(proposal) ? { original: proposal.original, proposed: proposal.proposed } : {}),
    };
    this.view.open(document).catch((error: unknown) =>
      this.log(`dave: could not open the proposal of ${permission.requestId}: ${String(error)}`),
    );
  }
}
