/**
 * Reviewing changes (issue 14) against the real server and the fake model: a
 * file tool's proposal opens (a stub ProposalView stands in for VS Code's diff
 * editor) with the exact before and after; Accept sends the right side as
 * `editedContent` when the user changed it, and the file then ends exactly so;
 * Reject leaves it alone; a turn's changes are listed, reviewed and undone,
 * per file, per hunk and whole; a file changed since is a conflict and kept.
 * The pure parts (ProposalReview, the hunks, the row after an Undo) are tested
 * without a server at the end.
 */

import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';

import { ChatController, type ChangePick, type ChangesUi } from '../src/chat/chatController';
import {
  afterRevert,
  diffHunks,
  editedContent,
  ProposalReview,
  type ChangesItem,
  type ProposalDocument,
  type ProposalView,
} from '../src/chat/review';
import type { ChangedFile } from '../src/protocol/changeTypes';
import type { PendingPermission } from '../src/protocol/permissions';
import type { ProgressValue } from '../src/protocol/progressTypes';
import { Methods, type PermissionParams } from '../src/protocol/types';
import type { ChatItem, ToWebview } from '../src/shared/messages';
import { recordingClient, serverForSuite, testHost, waitFor } from './helpers';

const T = { timeout: 120_000 };

/** Stands in for the diff editor: records what it shows; `texts` is the right side "as typed". */
class StubView implements ProposalView {
  opened: ProposalDocument[] = [];
  closed: string[] = [];
  texts = new Map<string, string>();
  onOpen?: (document: ProposalDocument) => void;

  open(document: ProposalDocument): Promise<void> {
    this.opened.push(structuredClone(document));
    if (!this.texts.has(document.requestId) && document.proposed !== undefined) {
      this.texts.set(document.requestId, document.proposed);
    }
    // As a user would: a moment after the editor opened.
    setImmediate(() => this.onOpen?.(document));
    return Promise.resolve();
  }
  close(requestId: string): Promise<void> {
    this.closed.push(requestId);
    return Promise.resolve();
  }
  text(requestId: string): string | undefined {
    return this.texts.get(requestId);
  }
}

class StubChangesUi implements ChangesUi {
  shown: Array<{ title: string; files: ChangedFile[] }> = [];
  warnings: string[] = [];
  infos: string[] = [];
  offered: ChangePick[][] = [];
  choose: (items: ChangePick[]) => ChangePick | undefined = () => undefined;

  show(title: string, files: ChangedFile[]): Promise<void> {
    this.shown.push({ title, files: structuredClone(files) });
    return Promise.resolve();
  }
  pick<P extends ChangePick>(items: P[]): Promise<P | undefined> {
    this.offered.push(items);
    return Promise.resolve(this.choose(items) as P | undefined);
  }
  warn(message: string): void {
    this.warnings.push(message);
  }
  info(message: string): void {
    this.infos.push(message);
  }
}

interface Rig {
  chat: ChatController;
  view: StubView;
  ui: StubChangesUi;
  /** Every dave/permission this window sent. */
  answers: PermissionParams[];
  /** Every report the server sent. */
  reports: ProgressValue[];
  posted: ToWebview[];
}

describe('reviewing changes with the real server', () => {
  const suite = serverForSuite();

  function rig(): Rig {
    const server = suite.dave.server;
    const { client, permissions: answers, reports } = recordingClient(server);
    const view = new StubView();
    const ui = new StubChangesUi();
    const host = testHost(client, { cwd: suite.dave.workspace, proposals: new ProposalReview(view), changesUi: ui });
    return { chat: new ChatController(host), view, ui, answers, reports, posted: host.posted };
  }

  const file = (name: string): string => path.join(suite.dave.workspace, name);
  /** One turn that reads the file (the CLI edits only files it has read) and then writes it. */
  const readThenWrite = (target: string, content: string): string =>
    `steps ${JSON.stringify([
      ['Read', { file_path: target }],
      ['Write', { file_path: target, content }],
    ])}`;
  const items = (chat: ChatController): ChatItem[] => chat.items(chat.activeSessionId!);
  const card = (chat: ChatController): Extract<ChatItem, { kind: 'permission' }> | undefined =>
    items(chat).find((i): i is Extract<ChatItem, { kind: 'permission' }> => i.kind === 'permission');
  const changesRow = (chat: ChatController): ChangesItem | undefined =>
    [...items(chat)].reverse().find((i): i is ChangesItem => i.kind === 'changes');

  it('the capabilities advertise dave/changes and dave/revertChanges', () => {
    const methods = suite.dave.server.capabilities?.methods ?? [];
    assert.ok(methods.includes(Methods.changes) && methods.includes(Methods.revertChanges), JSON.stringify(methods));
  });

  it('a Write proposal opens with the exact before and after; Accept of an edited version lands exactly that', T, async () => {
    const { chat, view, answers, reports } = rig();
    const target = file('edit-me.txt');
    writeFileSync(target, 'zero\nkeep\n');
    const edited = 'one\nkeep\nmine, typed in the diff editor\n';
    view.onOpen = (document) => {
      view.texts.set(document.requestId, edited);
      // The editor title's Accept: dave.acceptProposal calls this.
      void chat.answerPermission(document.requestId, 'allow');
    };
    const outcome = await chat.send(readThenWrite(target, 'one\nkeep\n'));
    assert.equal(outcome?.kind, 'done', JSON.stringify(outcome));

    assert.equal(view.opened.length, 1);
    const opened = view.opened[0];
    assert.deepEqual(
      { path: opened.path, title: opened.title, exists: opened.exists, original: opened.original, proposed: opened.proposed, binary: opened.binary },
      { path: target, title: "edit-me.txt (Dave's proposal)", exists: true, original: 'zero\nkeep\n', proposed: 'one\nkeep\n', binary: false },
    );
    assert.match(opened.diff, /^-zero$/m);
    assert.match(opened.diff, /^\+one$/m);

    assert.deepEqual(answers, [{ requestId: opened.requestId, decision: 'allow', editedContent: edited }]);
    assert.equal(readFileSync(target, 'utf8'), edited, 'the file on disk ends exactly as accepted');
    const resolved = reports.find((r) => r.kind === 'report' && r.type === 'permissionResolved' && r.requestId === opened.requestId);
    assert.deepEqual(
      resolved?.kind === 'report' && resolved.type === 'permissionResolved' && [resolved.decision, resolved.by, resolved.edited],
      ['allow', 'user', true],
      'the server says the accepted version was edited',
    );
    assert.deepEqual(view.closed, [opened.requestId], 'the diff editor closes once answered');
    const c = card(chat)!;
    assert.equal(c.state, 'allowed');
    assert.match(c.outcome ?? '', /^Allowed with your edits/);
    assert.equal(c.review?.file, 'edit-me.txt');
    assert.equal(c.review?.editable, true);

    // The turn's change is listed: the user's version is what landed.
    await waitFor(() => changesRow(chat)?.turn !== undefined, 10_000, 'the row to learn its turn');
    const row = changesRow(chat)!;
    assert.deepEqual(
      row.files.map((f) => [f.label, f.status]),
      [['edit-me.txt', 'modified']],
    );
  });

  it('Accept without edits is a plain allow; a new file has an empty left side', T, async () => {
    const { chat, view, answers } = rig();
    view.onOpen = (document) => void chat.answerPermission(document.requestId, 'allow');
    const outcome = await chat.send('write review-new.txt hello there');
    assert.equal(outcome?.kind, 'done', JSON.stringify(outcome));
    assert.deepEqual(
      view.opened.map((d) => [d.path, d.exists, d.original, d.proposed, d.title]),
      [[file('review-new.txt'), false, '', 'hello there', "review-new.txt (Dave's proposal)"]],
    );
    assert.deepEqual(answers, [{ requestId: view.opened[0].requestId, decision: 'allow' }], 'no editedContent');
    assert.equal(readFileSync(file('review-new.txt'), 'utf8'), 'hello there');
    assert.equal(card(chat)?.outcome, 'Allowed');
    const row = changesRow(chat)!;
    assert.deepEqual(
      row.files.map((f) => [f.label, f.status, f.added, f.removed]),
      [['review-new.txt', 'created', 1, 0]],
    );
  });

  it('Reject leaves the file untouched and tells the model why', T, async () => {
    const { chat, view, answers } = rig();
    const target = file('rejected.txt');
    writeFileSync(target, 'as it was\n');
    view.onOpen = (document) => {
      view.texts.set(document.requestId, 'edits that are thrown away\n');
      void chat.answerPermission(document.requestId, 'deny', 'not like that');
    };
    const outcome = await chat.send(readThenWrite(target, 'replaced\n'));
    assert.equal(outcome?.kind, 'done', JSON.stringify(outcome));
    assert.equal(readFileSync(target, 'utf8'), 'as it was\n');
    assert.deepEqual(answers, [{ requestId: view.opened[0].requestId, decision: 'deny', reason: 'not like that' }]);
    assert.deepEqual(view.closed, [view.opened[0].requestId]);
    assert.equal(card(chat)?.state, 'denied');
    assert.equal(changesRow(chat), undefined, 'nothing changed: no "files changed" row');
    assert.match(outcome?.kind === 'done' ? outcome.result.text : '', /not like that/);
  });

  it('Stop while a proposal waits closes its editor', T, async () => {
    const { chat, view } = rig();
    view.onOpen = () => void chat.stop();
    const outcome = await chat.send('write stopped.txt never');
    assert.equal(outcome?.kind, 'cancelled');
    assert.deepEqual(view.closed, [view.opened[0].requestId]);
    assert.equal(existsSync(file('stopped.txt')), false);
  });

  it('Review shows the turn’s files; Undo of one file, then of all, restores them', T, async () => {
    const { chat, view, ui } = rig();
    const a = file('undo-a.txt');
    const b = file('undo-b.txt');
    writeFileSync(a, 'a before\n');
    view.onOpen = (document) => void chat.answerPermission(document.requestId, 'allow');
    const outcome = await chat.send(
      `steps ${JSON.stringify([
        ['Read', { file_path: a }],
        ['Write', { file_path: a, content: 'a after\n' }],
        ['Write', { file_path: b, content: 'b new\n' }],
      ])}`,
    );
    assert.equal(outcome?.kind, 'done', JSON.stringify(outcome));
    assert.deepEqual(
      outcome?.kind === 'done' && outcome.result.changes?.map((c) => [c.path, c.status]),
      [
        [a, 'modified'],
        [b, 'created'],
      ],
    );
    await waitFor(() => changesRow(chat)?.turn !== undefined, 10_000, 'the row to learn its turn');
    const row = changesRow(chat)!;
    assert.deepEqual(row.files.map((f) => f.label), ['undo-a.txt', 'undo-b.txt']);

    await chat.handleMessage({ type: 'reviewChanges', itemId: row.id });
    assert.equal(ui.shown.length, 1);
    assert.match(ui.shown[0].title, /2 files changed/);
    assert.deepEqual(
      ui.shown[0].files.map((f) => [f.path, f.status, f.before, f.after]),
      [
        [a, 'modified', 'a before\n', 'a after\n'],
        [b, 'created', null, 'b new\n'],
      ],
    );

    // The row's per-file Undo.
    await chat.handleMessage({ type: 'undoChanges', itemId: row.id, path: b });
    assert.equal(existsSync(b), false, 'a created file is deleted');
    assert.equal(readFileSync(a, 'utf8'), 'a after\n', 'the other file is left');
    let now = changesRow(chat)!;
    assert.deepEqual(now.files.map((f) => [f.label, f.reverted ?? false]), [['undo-a.txt', false], ['undo-b.txt', true]]);
    assert.ok(ui.infos.some((m) => m.includes('undo-b.txt')), JSON.stringify(ui.infos));

    // The row's Undo: the rest; undoing b again is no conflict.
    const result = await chat.undoChanges(row.id);
    assert.deepEqual(result?.conflicts, []);
    assert.ok(result?.reverted.some((p) => p === a || p.endsWith('undo-a.txt')), JSON.stringify(result));
    assert.equal(readFileSync(a, 'utf8'), 'a before\n');
    now = changesRow(chat)!;
    assert.deepEqual(now.files.map((f) => f.reverted ?? false), [true, true]);
    assert.deepEqual(ui.warnings, []);
    assert.ok(
      view.closed.length === 2 && row.turn !== undefined,
      'both proposals were answered and closed; the row knew its turn',
    );
  });

  it('a file changed after the turn is a conflict: reported with its message and not overwritten', T, async () => {
    const { chat, view, ui } = rig();
    const target = file('conflict.txt');
    view.onOpen = (document) => void chat.answerPermission(document.requestId, 'allow');
    await chat.send('write conflict.txt the turn wrote this');
    assert.equal(readFileSync(target, 'utf8'), 'the turn wrote this');
    writeFileSync(target, 'the user changed it since');

    // "Dave: Undo Last Changes".
    const result = await chat.undoLastChanges();
    assert.deepEqual(result?.reverted, []);
    assert.equal(result?.conflicts.length, 1);
    const conflict = result.conflicts[0];
    assert.ok(conflict.message.length > 0);
    assert.equal(readFileSync(target, 'utf8'), 'the user changed it since', 'nothing is lost');
    assert.equal(ui.warnings.length, 1);
    assert.ok(ui.warnings[0].includes('conflict.txt') && ui.warnings[0].includes(conflict.message), ui.warnings[0]);
    const row = changesRow(chat)!;
    assert.equal(row.files[0]?.conflict, conflict.message);
    assert.match(row.note ?? '', /Not undone/);
  });

  it('Review Last Changes offers each file and hunk; undoing one hunk keeps the others', T, async () => {
    const { chat, view, ui } = rig();
    const target = file('hunks.txt');
    const lines = Array.from({ length: 20 }, (_, i) => `line ${i + 1}`);
    const before = `${lines.join('\n')}\n`;
    const after = `${lines.map((l, i) => (i === 1 ? 'LINE 2' : i === 18 ? 'LINE 19' : l)).join('\n')}\n`;
    writeFileSync(target, before);
    view.onOpen = (document) => void chat.answerPermission(document.requestId, 'allow');
    await chat.send(readThenWrite(target, after));
    assert.equal(readFileSync(target, 'utf8'), after);

    ui.choose = (picks) => picks.find((p) => p.action === 'undoHunk' && p.hunk?.index === 0);
    await chat.reviewLastChanges();
    const offered = ui.offered[0];
    assert.deepEqual(
      offered.map((p) => p.action),
      ['openAll', 'open', 'undoAll', 'undoFile', 'undoHunk', 'undoHunk'],
    );
    assert.match(offered[4].label, /Undo change 1 of 2 in hunks\.txt/);
    assert.equal(offered[4].detail, '-line 2');
    assert.equal(
      readFileSync(target, 'utf8'),
      `${lines.map((l, i) => (i === 18 ? 'LINE 19' : l)).join('\n')}\n`,
      'the first hunk is undone, the second kept',
    );
    const row = changesRow(chat)!;
    assert.equal(row.files[0]?.reverted, undefined, 'one hunk undone: the file is not marked undone');
    assert.equal(row.note, 'Undone: the chosen change in hunks.txt.');
    assert.deepEqual(ui.warnings, []);

    // Open one file's diff from the same pick.
    ui.choose = (picks) => picks.find((p) => p.action === 'open');
    await chat.reviewLastChanges();
    assert.deepEqual(ui.shown.map((s) => s.files.map((f) => f.path)), [[target]]);
  });
});

// ---- without a server ----------------------------------------------------

function permission(over: Partial<PendingPermission>): PendingPermission {
  return {
    requestId: 'r1',
    sessionId: 's',
    toolUseId: 't1',
    toolName: 'Write',
    input: {},
    message: 'Allow Write notes.txt?',
    state: 'pending',
    ...over,
  };
}

describe('ProposalReview and the review helpers', () => {
  it('opens while pending, once, and closes on any end; binary or diff-less proposals open nothing', () => {
    const view = new StubView();
    const review = new ProposalReview(view);
    const proposal = { path: '/w/notes.txt', exists: true, original: 'a\n', proposed: 'b\n', diff: '@@ -1 +1 @@\n-a\n+b\n' };
    review.changed(permission({ proposal }));
    review.changed(permission({ proposal }));
    assert.equal(view.opened.length, 1);
    assert.equal(review.reopen('r1'), true, 'the card can open it again');
    assert.equal(view.opened.length, 2);
    view.texts.set('r1', 'b\n');
    assert.equal(review.editedContent('r1'), undefined, 'unchanged: a plain allow');
    view.texts.set('r1', 'b\r\n');
    assert.equal(review.editedContent('r1'), undefined, 'only the line ends differ');
    view.texts.set('r1', 'c\n');
    assert.equal(review.editedContent('r1'), 'c\n');
    review.changed(permission({ proposal, state: 'expired', expired: { reason: 'queryEnded' } }));
    assert.deepEqual(view.closed, ['r1']);
    assert.equal(review.has('r1'), false);
    assert.equal(review.editedContent('r1'), undefined);

    // Truncated: the diff read-only, nothing to edit.
    review.changed(permission({ requestId: 'r2', proposal: { path: '/w/big.txt', exists: true, diff: '@@ -1 +1 @@\n-x\n+y\n', truncated: true } }));
    assert.deepEqual(
      [view.opened.at(-1)?.requestId, view.opened.at(-1)?.original, view.opened.at(-1)?.diff],
      ['r2', undefined, '@@ -1 +1 @@\n-x\n+y\n'],
    );
    view.texts.set('r2', 'anything');
    assert.equal(review.editedContent('r2'), undefined, 'a truncated proposal is never sent edited');
    review.changed(permission({ requestId: 'r3', proposal: { path: '/w/blob.bin', exists: true, diff: '', binary: true } }));
    review.changed(permission({ requestId: 'r4', proposal: { path: '/w/huge.txt', exists: true, diff: '', truncated: true } }));
    assert.equal(view.opened.length, 3, 'nothing to show for a binary or a diff-less one');
    assert.equal(review.reopen('r3'), false);
    review.changed(permission({ requestId: 'r3', state: 'resolved', resolved: { decision: 'allow', by: 'rule' } }));
    review.changed(permission({ requestId: 'r5' }));
    assert.equal(view.opened.length, 3, 'a request without a proposal opens nothing');
  });

  it('editedContent only for whole-text proposals that changed', () => {
    assert.equal(editedContent(undefined, 'x'), undefined);
    assert.equal(editedContent({ path: '/f', exists: false, original: '', proposed: 'x', diff: '' }, 'x'), undefined);
    assert.equal(editedContent({ path: '/f', exists: false, original: '', proposed: 'x', diff: '' }, 'y'), 'y');
    assert.equal(editedContent({ path: '/f', exists: false, original: '', proposed: 'x', diff: '' }, undefined), undefined);
  });

  it('numbers hunks from 0 as dave/revertChanges counts them', () => {
    const diff = '--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n@@ -10,2 +10,3 @@\n x\n+y\n';
    assert.deepEqual(diffHunks(diff), [
      { index: 0, header: '@@ -1,3 +1,3 @@', firstChange: '-b' },
      { index: 1, header: '@@ -10,2 +10,3 @@', firstChange: '+y' },
    ]);
    assert.deepEqual(diffHunks(''), []);
  });

  it('the row after an Undo marks reverted files and keeps conflicts with their messages', () => {
    const row: ChangesItem = {
      id: 'c1',
      kind: 'changes',
      turn: 3,
      files: [
        { path: '/w/a.txt', label: 'a.txt', status: 'modified', added: 1, removed: 1 },
        { path: '/w/b.txt', label: 'b.txt', status: 'created', added: 2, removed: 0 },
      ],
    };
    const after = afterRevert(row, { reverted: ['b.txt'], conflicts: [{ path: '/w/a.txt', message: 'a.txt changed since the turn.' }] }, '/w');
    assert.deepEqual(
      after.files.map((f) => [f.label, f.reverted ?? false, f.conflict]),
      [
        ['a.txt', false, 'a.txt changed since the turn.'],
        ['b.txt', true, undefined],
      ],
    );
    assert.equal(after.note, 'Undone: b.txt. Not undone (changed since): a.txt.');
    const again = afterRevert(after, { reverted: ['/w/a.txt'], conflicts: [] }, '/w');
    assert.deepEqual(again.files.map((f) => [f.reverted, f.conflict]), [[true, undefined], [true, undefined]]);
  });
});
