/**
 * The per-turn reducer and the permission ledger, without a server: a turn is
 * a list of events, and what the chat shows is a function of them.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { cardAfterReload, replayTurn, toolTarget, type TurnEvent } from '../src/chat/turnReducer';
import { PermissionLedger, type PendingPermission } from '../src/protocol/permissions';
import type { PermissionRequestReport } from '../src/protocol/progressTypes';
import type { QueryOutcome } from '../src/protocol/query';
import type { ChatItem } from '../src/shared/messages';

const done = (text: string): QueryOutcome => ({ kind: 'done', result: { sessionId: 's', text, stopReason: 'end_turn', toolResults: [] } });

function request(id: string, extra: Partial<PermissionRequestReport> = {}): PermissionRequestReport {
  return {
    kind: 'report',
    type: 'permissionRequest',
    requestId: id,
    sessionId: 's',
    toolUseId: 'tu1',
    toolName: 'Write',
    input: { file_path: '/abs/notes.txt', content: 'hi' },
    message: 'Allow Write notes.txt?',
    ...extra,
  };
}

/** A ledger whose changes become reducer events, as DaveClient and the controller wire them. */
function ledger(): { ledger: PermissionLedger; events: TurnEvent[]; notify: (p: PendingPermission) => void } {
  const events: TurnEvent[] = [];
  return { ledger: new PermissionLedger(), events, notify: (p) => events.push({ type: 'permission', permission: { ...p } }) };
}

const cards = (items: readonly ChatItem[]): Array<Extract<ChatItem, { kind: 'permission' }>> =>
  items.filter((i): i is Extract<ChatItem, { kind: 'permission' }> => i.kind === 'permission');

describe('the turn reducer', () => {
  it('streams tokens into one assistant item and ends it with the reply', () => {
    const [state, effects] = replayTurn('t', [
      { type: 'token', text: 'You ' },
      { type: 'token', text: 'said' },
      { type: 'end', outcome: done('You said'), streamedText: 'You said' },
    ]);
    assert.deepEqual(state.items, [{ id: 't-1', kind: 'assistant', text: 'You said', streaming: false }]);
    assert.deepEqual(
      effects.map((e) => e.type),
      ['append', 'appendText', 'update', 'reply', 'status'],
    );
    assert.deepEqual(effects.at(-2), { type: 'reply', text: 'You said' });
    assert.deepEqual(effects.at(-1), { type: 'status', text: '' });
  });

  it('shows the result when nothing streamed, and a failure once', () => {
    const [quiet] = replayTurn('q', [{ type: 'end', outcome: done('all at once'), streamedText: '' }]);
    assert.deepEqual(quiet.items, [{ id: 'q-1', kind: 'assistant', text: 'all at once', streaming: false }]);
    const failed: QueryOutcome = { kind: 'failed', code: -32803, message: 'API Error: 400', partialText: '', toolResults: [] };
    const [state] = replayTurn('f', [
      { type: 'error', message: 'API Error: 400' },
      { type: 'end', outcome: failed, streamedText: '' },
    ]);
    assert.deepEqual(state.items, [{ id: 'f-1', kind: 'error', message: 'API Error: 400' }]);
  });

  it('a tool row says what the server said, less the tool name, until its summary comes', () => {
    assert.equal(toolTarget('Write', 'Write notes.txt'), 'notes.txt');
    assert.equal(toolTarget('Bash', 'Bash rm -f one.txt'), 'rm -f one.txt');
    assert.equal(toolTarget('Bash', undefined), '', 'missing: the row shows the tool name alone');
    assert.equal(toolTarget('Task', 'Task'), '');
    const [running] = replayTurn('t', [{ type: 'toolUse', toolUseId: 'tu1', toolName: 'Write', message: 'Write notes.txt' }]);
    assert.deepEqual(running.items, [
      { id: 't-1', kind: 'tool', toolUseId: 'tu1', toolName: 'Write', summary: 'notes.txt', isError: false, done: false },
    ]);
    const [finished] = replayTurn('t', [
      { type: 'toolUse', toolUseId: 'tu1', toolName: 'Write', message: 'Write notes.txt' },
      { type: 'toolResult', toolUseId: 'tu1', toolName: 'Write', summary: 'notes.txt (2 bytes)', isError: false },
    ]);
    assert.deepEqual(finished.items, [
      { id: 't-1', kind: 'tool', toolUseId: 'tu1', toolName: 'Write', summary: 'notes.txt (2 bytes)', isError: false, done: true },
    ]);
  });

  it('a card follows its request through the ledger: pending, answered once, resolved', () => {
    const { ledger: book, events, notify } = ledger();
    events.push({ type: 'toolUse', toolUseId: 'tu1', toolName: 'Write', message: 'Write notes.txt' });
    book.open(request('r1', { allowAlways: { rule: 'Edit(/abs/**)', label: 'all file edits in this session\'s folder' } }), 's', notify);
    assert.equal(book.beginAnswer('r1', 'allowAlways'), true);
    assert.equal(book.beginAnswer('r1', 'deny'), false, 'a second answer is refused');
    book.answerSent('r1');
    book.resolve({ kind: 'report', type: 'permissionResolved', requestId: 'r1', decision: 'allow', by: 'user', rule: 'Edit(/abs/**)' });
    book.expire('queryEnded', ['r1']);
    const seen = events.filter((e): e is Extract<TurnEvent, { type: 'permission' }> => e.type === 'permission');
    assert.deepEqual(seen.map((e) => e.permission.state), ['pending', 'answering', 'answered', 'resolved'], 'final states do not move');

    const [state, effects] = replayTurn('t', events);
    const [card] = cards(state.items);
    assert.deepEqual(card, {
      id: 't-2',
      kind: 'permission',
      requestId: 'r1',
      toolName: 'Write',
      message: 'Allow Write notes.txt?',
      detail: 'notes.txt\nhi',
      allowAlways: { rule: 'Edit(/abs/**)', label: 'all file edits in this session\'s folder' },
      state: 'allowed',
      outcome: 'Allowed always: added the rule Edit(/abs/**)',
    });
    const statuses = effects.flatMap((e) => (e.type === 'status' ? [e.text] : []));
    assert.deepEqual(statuses, ['Waiting for your answer: Allow Write notes.txt?', 'Working…']);
  });

  it('a request that nobody resolved expires, and says why', () => {
    const why = (reason: Parameters<PermissionLedger['expire']>[0], answered: boolean): string | undefined => {
      const { ledger: book, events, notify } = ledger();
      book.open(request('r'), 's', notify);
      if (answered) book.beginAnswer('r', 'allow');
      book.expire(reason);
      const [card] = cards(replayTurn('t', events)[0].items);
      assert.equal(card?.state, 'expired');
      return card?.outcome;
    };
    assert.equal(why('cancelled', false), 'Cancelled');
    assert.equal(why('queryEnded', true), 'No longer waiting for an answer');
    assert.equal(why('serverStopped', true), 'The server stopped before this was resolved');

    const { ledger: book, events, notify } = ledger();
    book.open(request('r'), 's', notify);
    book.beginAnswer('r', 'allow');
    book.answerFailed('r', 'unknown requestId');
    book.resolve({ kind: 'report', type: 'permissionResolved', requestId: 'r', decision: 'allow', by: 'user' });
    const [card] = cards(replayTurn('t', events)[0].items);
    assert.deepEqual([card?.state, card?.outcome], ['expired', 'Could not answer: unknown requestId']);
  });

  it('a use a rule allowed without asking is one line naming the rule; the mode says nothing', () => {
    const [state] = replayTurn('t', [
      { type: 'permissionResolved', requestId: 'x', decision: 'allow', by: 'rule', rule: 'Bash(ls)' },
      { type: 'permissionResolved', requestId: 'y', decision: 'allow', by: 'mode' },
    ]);
    assert.deepEqual(state.items, [{ id: 't-1', kind: 'notice', text: 'Allowed by rule Bash(ls)' }]);
  });

  it('a stored card that was still open is expired after a reload', () => {
    const card = { id: 'c', kind: 'permission', requestId: 'r', toolName: 'Bash', message: 'Allow Bash ls?', detail: 'ls', state: 'answered', outcome: 'Allowed' } as const;
    assert.deepEqual(cardAfterReload(card), { ...card, state: 'expired', outcome: 'No longer waiting for an answer' });
    const allowed = { ...card, state: 'allowed' } as const;
    assert.equal(cardAfterReload(allowed), allowed);
  });

  it('a turn that changed files ends with its "files changed" row and asks for its turn number', () => {
    const outcome: QueryOutcome = {
      kind: 'done',
      result: {
        sessionId: 's',
        text: 'done',
        stopReason: 'end_turn',
        toolResults: [],
        changes: [
          { path: '/w/src/a.py', status: 'modified', added: 2, removed: 1 },
          { path: '/elsewhere/b.txt', status: 'created', added: 1, removed: 0 },
        ],
      },
    };
    const [state, effects] = replayTurn('t', [{ type: 'end', outcome, streamedText: '' }], '/w');
    assert.deepEqual(state.items.at(-1), {
      id: 't-2',
      kind: 'changes',
      files: [
        { path: '/w/src/a.py', label: 'src/a.py', status: 'modified', added: 2, removed: 1 },
        { path: '/elsewhere/b.txt', label: '/elsewhere/b.txt', status: 'created', added: 1, removed: 0 },
      ],
    });
    assert.ok(effects.some((e) => e.type === 'changes' && e.itemId === 't-2'));
    // A stopped turn that changed files lists them too; one with no changes has no row.
    const [stopped] = replayTurn('s', [
      { type: 'end', outcome: { kind: 'cancelled', code: -32800, message: 'c', partialText: '', changes: [{ path: '/w/x', status: 'deleted', added: 0, removed: 4 }] }, streamedText: '' },
    ]);
    assert.deepEqual(stopped.items.map((i) => i.kind), ['notice', 'changes']);
    const [plain] = replayTurn('p', [{ type: 'end', outcome: done('hi'), streamedText: '' }]);
    assert.equal(plain.items.some((i) => i.kind === 'changes'), false);
  });

  it('a proposal card says how to review it, and an edited accept says so', () => {
    const { ledger: l, events, notify } = ledger();
    l.open(
      request('r1', { proposal: { path: '/w/notes.txt', exists: true, original: 'a\n', proposed: 'b\n', diff: '@@ -1 +1 @@\n-a\n+b\n' } }),
      's',
      notify,
    );
    assert.equal(l.beginAnswer('r1', 'allow', true), true);
    l.answerSent('r1');
    l.resolve({ kind: 'report', type: 'permissionResolved', requestId: 'r1', decision: 'allow', by: 'user', edited: true });
    const [state] = replayTurn('t', events, '/w');
    const card = cards(state.items)[0];
    assert.deepEqual(card.review, {
      file: 'notes.txt',
      editable: true,
      viewable: true,
      note: 'The change is open in a diff editor: edit the right side, or revert blocks of it, before you allow it. Allow accepts the right side as it is then.',
    });
    assert.deepEqual([card.state, card.outcome], ['allowed', 'Allowed with your edits']);
    assert.equal(l.get('r1')?.resolved?.edited, true);

    // Truncated and binary proposals: answered on the card.
    const other = ledger();
    other.ledger.open(request('r2', { proposal: { path: '/w/big.txt', exists: true, diff: '@@', truncated: true, original: 'x', proposed: 'y' } }), 's', other.notify);
    other.ledger.open(request('r3', { proposal: { path: '/w/b.bin', exists: true, diff: '', binary: true } }), 's', other.notify);
    other.ledger.open(request('r4', { proposal: { exists: true } as never }), 's', other.notify);
    assert.equal(other.ledger.get('r2')?.proposal?.original, undefined, 'no whole texts kept for a truncated proposal');
    assert.equal(other.ledger.get('r4')?.proposal, undefined, 'a proposal without a path is dropped');
    const [s2] = replayTurn('u', other.events, '/w');
    assert.deepEqual(
      cards(s2.items).map((c) => [c.review?.editable, c.review?.viewable]),
      [
        [false, true],
        [false, false],
        [undefined, undefined],
      ],
    );
  });
});
