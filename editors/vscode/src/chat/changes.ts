/**
 * TurnChanges: the "N files changed" row of a turn (issue 14), without
 * `vscode`. After a turn that changed files it learns the turn's number
 * (`dave/changes`), so that a later Review or Undo names that turn; Review
 * opens the turn's diffs through the host's ChangesUi; Undo reverts the turn,
 * a file of it or a hunk (`dave/revertChanges`) and shows on the row what was
 * undone and what was a conflict (also as a warning, with the server's
 * messages). "Dave: Review Last Changes" and "Dave: Undo Last Changes" work on
 * the active session's last row. ChatController hands it the store and the
 * host and routes the webview's messages and the commands here.
 */

import type { ChangedFile, HunkRef, RevertChangesParams, RevertChangesResult } from '../protocol/changeTypes';
import type { DaveClient } from '../protocol/daveClient';
import { errorMessage } from '../protocol/errors';
import { Methods } from '../protocol/types';
import type { ToWebview } from '../shared/messages';
import { afterRevert, changesHeadline, diffHunks, relativeLabel, type ChangesItem } from './review';
import type { Session, SessionStore } from './sessionStore';

/** What Review and Undo need from the editor: vscode's diff editors and notifications in the extension. */
export interface ChangesUi {
  /** Opens the files' diffs (before → after) under `title`. */
  show(title: string, files: ChangedFile[]): Promise<void>;
  /** A quick pick; undefined when dismissed. */
  pick<T extends ChangePick>(items: T[], title: string): Promise<T | undefined>;
  /** A warning notification (conflicts). */
  warn(message: string): void;
  info(message: string): void;
}

/** A row of "Dave: Review Last Changes". */
export interface ChangePick {
  label: string;
  description?: string;
  detail?: string;
  action: 'openAll' | 'open' | 'undoAll' | 'undoFile' | 'undoHunk';
  file?: ChangedFile;
  hunk?: HunkRef;
}

/** What TurnChanges needs of the chat's host. */
export interface ChangesHost {
  getClient(): Promise<DaveClient>;
  post(message: ToWebview): void;
  cwd?: string;
  changesUi?: ChangesUi;
  log?(message: string): void;
}

export class TurnChanges {
  /** The turn number of each "files changed" row, while dave/changes is asked for it. */
  private readonly turnLookups = new Map<string, Promise<void>>();

  constructor(
    private readonly store: SessionStore,
    private readonly host: ChangesHost,
  ) {}

  /** Opens the diffs of a "files changed" row (the active session's last one by default). */
  async review(itemId?: string): Promise<ChangedFile[] | undefined> {
    const found = await this.changesOf(itemId);
    if (found === undefined) return undefined;
    const files = found.files;
    if (files.length === 0) {
      this.host.changesUi?.info('Dave has no changes to review for that turn any more.');
      return files;
    }
    await this.host.changesUi?.show(this.reviewTitle(found.turn, files), files);
    return files;
  }

  /**
   * Undoes a "files changed" row's turn (the active session's last one by
   * default): all of it, only `paths`, or only `hunks`. Reverted files and
   * conflicts show on the row; conflicts also as a warning, with the server's
   * messages. Nothing is overwritten that changed since the turn.
   */
  async undo(itemId?: string, target: { paths?: string[]; hunks?: HunkRef[] } = {}): Promise<RevertChangesResult | undefined> {
    const located = await this.locateChanges(itemId);
    if (located === undefined) return undefined;
    const { session, item, client } = located;
    if (!client.supports(Methods.revertChanges)) {
      this.host.changesUi?.info('This Dave server cannot undo changes (it does not offer dave/revertChanges); update dave-lsp.');
      return undefined;
    }
    const params: RevertChangesParams = { sessionId: session.id };
    if (item?.turn !== undefined) params.turn = item.turn;
    if (target.paths !== undefined) params.paths = target.paths;
    if (target.hunks !== undefined) params.hunks = target.hunks;
    let result: RevertChangesResult;
    try {
      result = await client.revertChanges(params);
    } catch (error) {
      this.host.changesUi?.warn(`Dave could not undo the changes: ${errorMessage(error)}`);
      return undefined;
    }
    if (item !== undefined) {
      const updated = afterRevert(item, result, this.host.cwd, target.hunks !== undefined && target.paths === undefined);
      this.store.replaceItem(session, updated);
      if (session.id === this.store.activeId) this.host.post({ type: 'update', item: { ...updated } });
      this.store.scheduleSave(0);
    }
    const label = (p: string): string => relativeLabel(p, this.host.cwd);
    if (result.conflicts.length > 0) {
      this.host.changesUi?.warn(
        `Dave did not undo ${result.conflicts.length === 1 ? 'a file' : `${result.conflicts.length} files`} that changed since: ${result.conflicts
          .map((c) => `${label(c.path)}: ${c.message}`)
          .join(' ')}`,
      );
    }
    if (result.reverted.length > 0) {
      const what = target.hunks !== undefined && target.paths === undefined ? 'the chosen change in' : 'its changes to';
      this.host.changesUi?.info(`Dave undid ${what} ${result.reverted.map(label).join(', ')}.`);
    } else if (result.conflicts.length === 0) {
      this.host.changesUi?.info('There was nothing left to undo.');
    }
    return result;
  }

  /**
   * "Dave: Review Last Changes": a quick pick over the active session's last
   * changes: open them all or one file's diff, undo all, one file or one hunk.
   */
  async reviewLast(): Promise<void> {
    const found = await this.changesOf(undefined);
    const ui = this.host.changesUi;
    if (found === undefined || ui === undefined) return;
    const { files, turn, itemId } = found;
    if (files.length === 0) {
      ui.info('Dave has not changed any files in this session yet.');
      return;
    }
    const picks: ChangePick[] = [
      { label: `$(diff) Open all: ${changesHeadline(files)}`, action: 'openAll' },
    ];
    for (const file of files) {
      const name = relativeLabel(file.path, this.host.cwd);
      picks.push({ label: `$(go-to-file) ${name}`, description: `${file.status} +${file.added} −${file.removed}`, action: 'open', file });
    }
    picks.push({ label: `$(discard) Undo all: ${changesHeadline(files)}`, action: 'undoAll' });
    for (const file of files) {
      const name = relativeLabel(file.path, this.host.cwd);
      picks.push({ label: `$(discard) Undo ${name}`, description: String(file.status), action: 'undoFile', file });
      const hunks = file.status === 'modified' ? diffHunks(file.diff) : [];
      if (hunks.length > 1) {
        for (const h of hunks) {
          picks.push({
            label: `$(discard) Undo change ${h.index + 1} of ${hunks.length} in ${name}`,
            description: h.header,
            detail: h.firstChange,
            action: 'undoHunk',
            file,
            hunk: { path: file.path, index: h.index },
          });
        }
      }
    }
    const picked = await ui.pick(picks, this.reviewTitle(turn, files));
    if (picked === undefined) return;
    switch (picked.action) {
      case 'openAll':
        await ui.show(this.reviewTitle(turn, files), files);
        break;
      case 'open':
        await ui.show(this.reviewTitle(turn, [picked.file!]), [picked.file!]);
        break;
      case 'undoAll':
        await this.undo(itemId);
        break;
      case 'undoFile':
        await this.undo(itemId, { paths: [picked.file!.path] });
        break;
      case 'undoHunk':
        await this.undo(itemId, { hunks: [picked.hunk!] });
        break;
    }
  }

  /** "Dave: Undo Last Changes": undoes the active session's last turn that changed files. */
  async undoLast(): Promise<RevertChangesResult | undefined> {
    return this.undo(undefined);
  }

  /** The row's session, the row (undefined: the server's last turn), and a client; says why when there is none. */
  private async locateChanges(
    itemId: string | undefined,
  ): Promise<{ session: Session; item: ChangesItem | undefined; client: DaveClient } | undefined> {
    let session: Session | undefined;
    let item: ChangesItem | undefined;
    if (itemId !== undefined) {
      for (const s of this.store.ordered()) {
        const found = s.items.find((i): i is ChangesItem => i.kind === 'changes' && i.id === itemId);
        if (found !== undefined) {
          session = s;
          item = found;
          break;
        }
      }
      if (session === undefined) return undefined;
    } else {
      session = this.store.active();
      if (session === undefined) {
        this.host.changesUi?.info('There is no Dave session yet, so there are no changes.');
        return undefined;
      }
      item = [...session.items].reverse().find((i): i is ChangesItem => i.kind === 'changes');
    }
    if (item !== undefined) {
      await this.turnLookups.get(item.id);
      // The row as it is now (its turn may have arrived).
      item = session.items.find((i): i is ChangesItem => i.kind === 'changes' && i.id === item!.id) ?? item;
    }
    let client: DaveClient;
    try {
      client = await this.host.getClient();
    } catch (error) {
      this.host.changesUi?.warn(errorMessage(error));
      return undefined;
    }
    return { session, item, client };
  }

  /** The files of a row's turn (dave/changes), with their texts and diffs. */
  private async changesOf(
    itemId: string | undefined,
  ): Promise<{ files: ChangedFile[]; turn: number | null; itemId: string | undefined } | undefined> {
    const located = await this.locateChanges(itemId);
    if (located === undefined) return undefined;
    const { session, item, client } = located;
    let result;
    try {
      result = await client.changes(session.id, item?.turn);
    } catch (error) {
      this.host.changesUi?.warn(`Dave could not list the changes: ${errorMessage(error)}`);
      return undefined;
    }
    if (result === undefined) {
      this.host.changesUi?.info('This Dave server cannot show changes (it does not offer dave/changes); update dave-lsp.');
      return undefined;
    }
    return { files: result.files, turn: result.turn, itemId: item?.id };
  }

  private reviewTitle(turn: number | null, files: readonly ChangedFile[]): string {
    if (files.length === 1) return `Dave's changes to ${relativeLabel(files[0].path, this.host.cwd)}`;
    return `Dave's changes${turn === null ? '' : ` (turn ${turn})`}: ${changesHeadline(files)}`;
  }

  /** A turn changed files: its row learns the turn's number, so that Undo and Review name that turn later. */
  learnTurn(session: Session, client: DaveClient, itemId: string): void {
    if (!client.supports(Methods.changes)) return;
    const lookup = client
      .changes(session.id)
      .then((result) => {
        const item = session.items.find((i): i is ChangesItem => i.kind === 'changes' && i.id === itemId);
        if (item === undefined || result?.turn === null || result?.turn === undefined) return;
        const updated: ChangesItem = { ...item, turn: result.turn };
        this.store.replaceItem(session, updated);
        if (session.id === this.store.activeId) this.host.post({ type: 'update', item: { ...updated } });
        this.store.scheduleSave(0);
      })
      .catch((error: unknown) => this.host.log?.(`dave: dave/changes after a turn failed: ${errorMessage(error)}`))
      .finally(() => this.turnLookups.delete(itemId));
    this.turnLookups.set(itemId, lookup);
  }
}
