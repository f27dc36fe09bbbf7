/**
 * SessionRewind: "Rewind to here" and "Fork from here" on a message of yours
 * (issue 27), without `vscode`.
 *
 * A message's turn is its place among the session's turns, as the server
 * numbers them (from 1; a turn that failed or was stopped before it changed a
 * file does not count): counted back from the server's own count
 * (`dave/listSessions`' `turns`), so a transcript whose start was trimmed or
 * resumed from the server still names the right turn.
 *
 * Rewind (`dave/rewind`) takes the message and everything after it off the
 * transcript, cuts the transcript the next query may send there too, puts the
 * message back in the message box and shows a card: the files restored and
 * those kept because they changed since, each with Review. Review opens the
 * rewound turns' change of that file, read (`dave/changes`) before the rewind
 * dropped them, in this window's memory only. Fork (`dave/fork`) opens a new
 * session holding the conversation up to and with the message; the original
 * stays in the session list as it was.
 */

import type { ChangedFile } from '../protocol/changeTypes';
import type { DaveClient } from '../protocol/daveClient';
import { errorMessage } from '../protocol/errors';
import type { RewindResult } from '../protocol/sessionTypes';
import { Methods } from '../protocol/types';
import type { ChatItem, RewindItem, RewoundFileRow } from '../shared/messages';
import type { ChangesHost } from './changes';
import type { PromptQueue } from './promptQueue';
import { relativeLabel, type ChangesItem } from './review';
import type { RunningTurns } from './runningTurns';
import type { Session, SessionStore } from './sessionStore';
import type { ViewUpdates } from './viewUpdates';

type UserItem = Extract<ChatItem, { kind: 'user' }>;

/**
 * Whether the turn of each user message (from its index to the next one's)
 * counts on the server: it does unless it failed or was stopped without
 * changing a file.
 */
export function countedTurns(items: readonly ChatItem[]): Array<{ index: number; counted: boolean }> {
  const out: Array<{ index: number; counted: boolean }> = [];
  let ended = false;
  let changed = false;
  const close = (): void => {
    const last = out.at(-1);
    if (last !== undefined) last.counted = changed || !ended;
  };
  items.forEach((item, index) => {
    if (item.kind === 'user') {
      close();
      out.push({ index, counted: true });
      ended = false;
      changed = false;
    } else if (item.kind === 'error' || (item.kind === 'notice' && item.text === 'Stopped.')) ended = true;
    else if (item.kind === 'changes') changed = true;
  });
  close();
  return out;
}

/**
 * The turn of the user message at `index`: one past the counted turns before
 * it, or, when the server says how many turns the session has, that count less
 * the counted turns from the message on, plus one.
 */
export function turnOfMessage(items: readonly ChatItem[], index: number, serverTurns: number | undefined): number {
  const turns = countedTurns(items);
  const before = turns.filter((t) => t.index < index && t.counted).length;
  const fromHere = turns.filter((t) => t.index >= index && t.counted).length;
  if (serverTurns !== undefined && serverTurns - fromHere + 1 >= 1) return serverTurns - fromHere + 1;
  return before + 1;
}

/** The transcript up to (without) the user message that is `fromEnd`-th from the last (1: the last). */
function historyBefore(session: Session, fromEnd: number): Session['history'] {
  let seen = 0;
  for (let i = session.history.length - 1; i >= 0; i--) {
    if (session.history[i]?.role !== 'user') continue;
    seen += 1;
    if (seen === fromEnd) return session.history.slice(0, i);
  }
  return [];
}

/** One file over the rewound turns: as before the first of them, and as the last left it. */
function throughTurns(changes: readonly ChangedFile[]): ChangedFile {
  const first = changes[0];
  const last = changes.at(-1)!;
  return { ...last, before: first.before, after: last.after };
}

export class SessionRewind {
  /** A rewind card's files: the rewound turns' change of each (kept in memory only). */
  private readonly diffs = new Map<string, Map<string, ChangedFile>>();

  constructor(
    private readonly host: ChangesHost,
    private readonly store: SessionStore,
    private readonly view: ViewUpdates,
    private readonly turns: RunningTurns,
    private readonly queue: PromptQueue,
  ) {}

  /** "Rewind to here" (`files`) or "Rewind chat only" on the user message `itemId`; undefined when it did not happen (the status line says why). */
  async rewind(itemId: string, files: boolean): Promise<RewindResult | undefined> {
    const found = await this.prepare(itemId, Methods.rewind, 'rewind');
    if (found === undefined) return undefined;
    const { session, index, message, client, turn, serverTurns } = found;
    const diffs = files ? await this.rewoundChanges(client, session, index, turn) : new Map<string, ChangedFile[]>();
    let result: RewindResult;
    try {
      // From this message on nothing made a turn (it failed or was stopped): the server has nothing to undo.
      const nothingThere = serverTurns !== undefined && turn > serverTurns;
      result = nothingThere ? { turn, restored: [], conflicts: [] } : await client.rewind({ sessionId: session.id, turn, files });
    } catch (error) {
      this.view.setStatus(session, `Dave could not rewind: ${errorMessage(error)}`);
      return undefined;
    }
    const fromEnd = session.items.slice(index).filter((i) => i.kind === 'user').length;
    session.history = historyBefore(session, fromEnd);
    const rows: RewoundFileRow[] = [
      ...result.restored.map((path) => ({ path, label: relativeLabel(path, this.host.cwd) })),
      ...result.conflicts.map((c) => ({ path: c.path, label: relativeLabel(c.path, this.host.cwd), conflict: c.message })),
    ];
    const card: RewindItem = { id: this.store.itemId(), kind: 'rewind', turn: result.turn, prompt: message.text, files, rows };
    session.items = [...session.items.slice(0, index), card];
    this.diffs.set(card.id, this.reviewable(diffs, result));
    this.store.scheduleSave(0);
    if (this.view.isActive(session)) {
      this.view.postState();
      // As in Claude Code: the rewound message is back in the box, to edit and send again.
      this.host.post({ type: 'focusInput', text: message.text });
    }
    this.view.setStatus(session, '');
    if (result.conflicts.length > 0) {
      this.host.changesUi?.warn(
        `Dave rewound the conversation but kept ${result.conflicts.length === 1 ? 'a file' : `${result.conflicts.length} files`} that changed since: ${result.conflicts
          .map((c) => `${relativeLabel(c.path, this.host.cwd)}: ${c.message}`)
          .join(' ')}`,
      );
    }
    return result;
  }

  /** "Fork from here" on the user message `itemId`: the new session's id, opened in the chat. */
  async fork(itemId: string): Promise<string | undefined> {
    const found = await this.prepare(itemId, Methods.fork, 'fork');
    if (found === undefined) return undefined;
    const { session, index, client, turn } = found;
    // The message's own turn goes with the fork, when it counted.
    const counted = countedTurns(session.items).find((t) => t.index === index)?.counted ?? true;
    const upTo = counted ? turn : turn - 1;
    if (upTo < 1) {
      this.view.setStatus(session, 'Nothing to fork: that message made no turn (it failed or was stopped).');
      return undefined;
    }
    let forkId: string;
    try {
      forkId = await client.fork({ sessionId: session.id, turn: upTo });
    } catch (error) {
      this.view.setStatus(session, `Dave could not fork the session: ${errorMessage(error)}`);
      return undefined;
    }
    const end = session.items.findIndex((item, i) => i > index && item.kind === 'user');
    const fromEnd = session.items.slice(index).filter((i) => i.kind === 'user').length;
    const history = end < 0 ? [...session.history] : historyBefore(session, fromEnd - 1);
    // Its own ids: rows are found by id across sessions. Cards and change rows belong to the original's turns.
    const items: ChatItem[] = session.items
      .slice(0, end < 0 ? undefined : end)
      .filter((item) => item.kind !== 'permission' && item.kind !== 'changes' && item.kind !== 'rewind')
      .map((item) => ({ ...item, id: this.store.itemId() }));
    const notice: ChatItem = {
      id: this.store.itemId(),
      kind: 'notice',
      text: `Forked from "${session.title}" at turn ${upTo}; that session goes on as it was, in the session list.`,
    };
    this.store.add({
      id: forkId,
      title: `${session.title} (fork)`,
      createdAt: Date.now(),
      items: [...items, notice],
      history,
      status: '',
      // The server holds the fork's conversation: its first query sends none.
      transcriptAt: client,
      ...(session.model !== undefined ? { model: session.model } : {}),
      ...(session.permissionMode !== undefined ? { permissionMode: session.permissionMode } : {}),
    });
    this.view.postState();
    return forkId;
  }

  /** A rewind card's Review of one file: what the rewound turns did to it. */
  async review(itemId: string, path: string): Promise<void> {
    const ui = this.host.changesUi;
    const file = this.diffs.get(itemId)?.get(path);
    if (ui === undefined) return;
    if (file === undefined) {
      ui.info('Dave has no diff of that file any more (it is kept until the window reloads).');
      return;
    }
    await ui.show(`Rewound: ${relativeLabel(path, this.host.cwd)}`, [file]);
  }

  /** The message, its session, a client that offers `method`, and its turn; the status line says why not. */
  private async prepare(
    itemId: string,
    method: string,
    what: string,
  ): Promise<{ session: Session; index: number; message: UserItem; client: DaveClient; turn: number; serverTurns?: number } | undefined> {
    for (const session of this.store.ordered()) {
      const index = session.items.findIndex((i) => i.id === itemId);
      const message = session.items[index];
      if (message?.kind !== 'user') continue;
      if (this.turns.isBusy(session.id) || this.queue.has(session.id)) {
        this.view.setStatus(session, `Stop Dave's answer first: a session cannot ${what} while a turn runs.`);
        return undefined;
      }
      let client: DaveClient;
      try {
        client = await this.host.getClient();
      } catch (error) {
        this.view.setStatus(session, errorMessage(error));
        return undefined;
      }
      if (!client.supports(method)) {
        this.view.setStatus(session, `This Dave server cannot ${what} (it does not offer ${method}); update dave-lsp.`);
        return undefined;
      }
      let serverTurns: number | undefined;
      try {
        const sessions = (await client.listSessions())?.sessions;
        const listed = sessions?.find((s) => s.sessionId === session.id);
        // Not listed: the server has no turn of it (its first prompt never reached it).
        if (typeof listed?.turns === 'number') serverTurns = listed.turns;
        else if (sessions !== undefined && listed === undefined) serverTurns = 0;
      } catch (error) {
        this.host.log?.(`dave: listSessions failed: ${errorMessage(error)}`);
      }
      const turn = turnOfMessage(session.items, index, serverTurns);
      return { session, index, message, client, turn, ...(serverTurns !== undefined ? { serverTurns } : {}) };
    }
    return undefined;
  }

  /** Each file the turns from `turn` on changed (their "files changed" rows), oldest change first. */
  private async rewoundChanges(client: DaveClient, session: Session, index: number, turn: number): Promise<Map<string, ChangedFile[]>> {
    const byPath = new Map<string, ChangedFile[]>();
    const rowTurns = session.items
      .slice(index)
      .filter((i): i is ChangesItem => i.kind === 'changes')
      .map((row) => row.turn)
      .filter((t): t is number => t !== undefined && t >= turn);
    for (const t of [...new Set(rowTurns)].sort((a, b) => a - b)) {
      try {
        for (const file of (await client.changes(session.id, t))?.files ?? []) {
          byPath.set(file.path, [...(byPath.get(file.path) ?? []), file]);
        }
      } catch (error) {
        this.host.log?.(`dave: dave/changes of turn ${t} failed: ${errorMessage(error)}`);
      }
    }
    return byPath;
  }

  /**
   * What Review opens for each file of the card, as a diff against the file on
   * disk: a restored file from what the turns left (the rewind's undoing); a
   * kept one from before the turns (all that changed since, theirs and yours).
   */
  private reviewable(changes: Map<string, ChangedFile[]>, result: RewindResult): Map<string, ChangedFile> {
    const out = new Map<string, ChangedFile>();
    for (const path of result.restored) {
      const list = changes.get(path);
      if (list === undefined) continue;
      const through = throughTurns(list);
      out.set(path, { ...through, status: through.before === null ? 'deleted' : 'modified', before: through.after, after: through.before });
    }
    for (const { path } of result.conflicts) {
      const list = changes.get(path);
      if (list !== undefined) out.set(path, throughTurns(list));
    }
    return out;
  }
}
