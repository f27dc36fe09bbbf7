/**
 * The transcript's cards in jsdom: a permission card that resolves once, Deny
 * with its reason, what Allow always adds, an expired card, the "N files
 * changed" card and a proposal's card with its Show diff.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import type { ChatItem } from '../src/shared/messages';
import { buttonsNamed, harness, state } from './webviewHarness';

describe('chat webview: cards', () => {
  it('a permission card resolves once', () => {
    const h = harness();
    h.app.handle({ type: 'state', state: state([], { busy: true }) });
    h.app.handle({
      type: 'append',
      item: {
        id: 'p1',
        kind: 'permission',
        requestId: 'req-1',
        toolName: 'Write',
        message: 'Allow Write notes.txt?',
        detail: 'notes.txt',
        state: 'pending',
      },
    });
    const card = h.doc.querySelector('[data-id="p1"]')!;
    assert.equal(card.getAttribute('role'), 'group');
    for (const name of ['Allow', 'Allow always', 'Deny']) assert.equal(buttonsNamed(card, name).length, 1, name);
    assert.equal(card.querySelector('input')?.getAttribute('aria-label'), 'Reason for denying');

    const allow = buttonsNamed(card, 'Allow')[0];
    const deny = buttonsNamed(card, 'Deny')[0];
    allow.click();
    allow.click();
    deny.click();
    const answers = h.posted.filter((m) => m.type === 'permission');
    assert.deepEqual(answers, [{ type: 'permission', requestId: 'req-1', decision: 'allow' }]);
    assert.equal(buttonsNamed(h.doc.querySelector('[data-id="p1"]')!, 'Allow').length, 0, 'the buttons are gone');
    assert.match(h.doc.querySelector('[data-id="p1"]')!.textContent ?? '', /Allowed/);

    // The extension's echo of the still-pending item must not bring the buttons back.
    h.app.handle({
      type: 'update',
      item: { id: 'p1', kind: 'permission', requestId: 'req-1', toolName: 'Write', message: 'Allow Write notes.txt?', detail: 'notes.txt', state: 'pending' },
    });
    assert.equal(buttonsNamed(h.doc.querySelector('[data-id="p1"]')!, 'Allow').length, 0);
    h.app.handle({
      type: 'update',
      item: { id: 'p1', kind: 'permission', requestId: 'req-1', toolName: 'Write', message: 'Allow Write notes.txt?', detail: 'notes.txt', state: 'allowed', outcome: 'Allowed by you' },
    });
    assert.match(h.doc.querySelector('[data-id="p1"]')!.textContent ?? '', /Allowed by you/);
    assert.equal(h.posted.filter((m) => m.type === 'permission').length, 1);
  });

  it('deny sends the reason, and Enter in the reason field denies', () => {
    const h = harness();
    h.app.handle({ type: 'state', state: state([], { busy: true }) });
    const card = (id: string, requestId: string): ChatItem => ({
      id,
      kind: 'permission',
      requestId,
      toolName: 'Bash',
      message: 'Allow Bash rm -rf build?',
      detail: 'rm -rf build',
      state: 'pending',
    });
    h.app.handle({ type: 'append', item: card('p1', 'r1') });
    const reason = h.doc.querySelector<HTMLInputElement>('[data-id="p1"] input')!;
    reason.value = '  not that folder ';
    buttonsNamed(h.doc.querySelector('[data-id="p1"]')!, 'Deny')[0].click();

    h.app.handle({ type: 'append', item: card('p2', 'r2') });
    const reason2 = h.doc.querySelector<HTMLInputElement>('[data-id="p2"] input')!;
    reason2.value = 'no';
    reason2.dispatchEvent(new h.dom.window.KeyboardEvent('keydown', { key: 'Enter', bubbles: true }));
    reason2.dispatchEvent(new h.dom.window.KeyboardEvent('keydown', { key: 'Enter', bubbles: true }));

    h.app.handle({ type: 'append', item: card('p3', 'r3') });
    buttonsNamed(h.doc.querySelector('[data-id="p3"]')!, 'Allow always')[0].click();

    assert.deepEqual(
      h.posted.filter((m) => m.type === 'permission'),
      [
        { type: 'permission', requestId: 'r1', decision: 'deny', reason: 'not that folder' },
        { type: 'permission', requestId: 'r2', decision: 'deny', reason: 'no' },
        { type: 'permission', requestId: 'r3', decision: 'allowAlways' },
      ],
    );
  });

  it('"Allow always" says what it allows before it is chosen, and the rule line shows after', () => {
    const h = harness();
    h.app.handle({ type: 'state', state: state([], { busy: true }) });
    const pending: ChatItem = {
      id: 'p1',
      kind: 'permission',
      requestId: 'req-1',
      toolName: 'Bash',
      message: 'Allow Bash rm -f one.txt?',
      detail: 'rm -f one.txt',
      allowAlways: { rule: 'Bash(rm -f one.txt)', label: 'this exact command' },
      state: 'pending',
    };
    h.app.handle({ type: 'append', item: pending });
    const card = (): Element => h.doc.querySelector('[data-id="p1"]')!;
    assert.equal(buttonsNamed(card(), 'Allow always').length, 0, 'not the bare words');
    const always = buttonsNamed(card(), 'Allow always: this exact command');
    assert.equal(always.length, 1);
    assert.equal(always[0].title, 'Adds the rule Bash(rm -f one.txt) for this session');
    assert.equal(card().querySelector('.permission-rule')?.textContent, 'Allow always adds the rule Bash(rm -f one.txt) for this session.');
    assert.equal(card().querySelector('.permission-rule code')?.textContent, 'Bash(rm -f one.txt)');

    always[0].click();
    assert.deepEqual(h.posted.filter((m) => m.type === 'permission'), [
      { type: 'permission', requestId: 'req-1', decision: 'allowAlways' },
    ]);
    assert.equal(card().querySelector('.permission-rule'), null, 'answered: the offer is gone');
    h.app.handle({
      type: 'update',
      item: { ...pending, state: 'allowed', outcome: 'Allowed always: added the rule Bash(rm -f one.txt)' },
    });
    assert.equal(card().querySelector('.permission-outcome')?.textContent, 'Allowed always: added the rule Bash(rm -f one.txt)');

    // The next run of that command, allowed by the rule, is a line in the transcript.
    h.app.handle({ type: 'append', item: { id: 'n1', kind: 'notice', text: 'Allowed by rule Bash(rm -f one.txt)' } });
    assert.equal(h.doc.querySelector('[data-id="n1"]')?.textContent, 'Allowed by rule Bash(rm -f one.txt)');
  });

  it('an older server’s card (no allowAlways) keeps the plain "Allow always"', () => {
    const h = harness();
    h.app.handle({
      type: 'state',
      state: state([
        { id: 'p1', kind: 'permission', requestId: 'r', toolName: 'Write', message: 'Allow Write a.txt?', detail: 'a.txt', state: 'pending' },
      ]),
    });
    const card = h.doc.querySelector('[data-id="p1"]')!;
    const always = buttonsNamed(card, 'Allow always');
    assert.equal(always.length, 1);
    assert.equal(always[0].title, '');
    assert.equal(card.querySelector('.permission-rule'), null);
  });

  it('an expired card shows no buttons', () => {
    const h = harness();
    h.app.handle({
      type: 'state',
      state: state([
        { id: 'p1', kind: 'permission', requestId: 'old', toolName: 'Write', message: 'Allow Write a.txt?', detail: '', state: 'expired' },
      ]),
    });
    const card = h.doc.querySelector('[data-id="p1"]')!;
    assert.equal(card.querySelectorAll('button').length, 0);
    assert.match(card.textContent ?? '', /No longer waiting/);
  });


  it('shows "N files changed" with Review and Undo, per-file Undo, and what an Undo did', () => {
    const h = harness();
    const row: ChatItem = {
      id: 'c1',
      kind: 'changes',
      turn: 2,
      files: [
        { path: '/w/src/app.py', label: 'src/app.py', status: 'modified', added: 3, removed: 1 },
        { path: '/w/notes.txt', label: 'notes.txt', status: 'created', added: 1, removed: 0 },
      ],
    };
    h.app.handle({ type: 'state', state: state([row]) });
    const node = h.doc.querySelector('[data-id="c1"]')!;
    assert.equal(node.getAttribute('role'), 'group');
    assert.equal(node.getAttribute('aria-label'), '2 files changed');
    assert.equal(node.querySelector('.changes-title')?.textContent, '2 files changed');
    assert.deepEqual(
      [...node.querySelectorAll('.changes-file')].map((li) => [
        li.querySelector('.changes-path')?.textContent,
        li.querySelector('.changes-status')?.textContent,
        li.querySelector('.changes-counts')?.textContent,
      ]),
      [
        ['src/app.py', 'modified', '+3 −1'],
        ['notes.txt', 'created', '+1 −0'],
      ],
    );
    for (const name of ['Review', 'Undo', 'Undo src/app.py', 'Undo notes.txt']) assert.equal(buttonsNamed(node, name).length, 1, name);

    buttonsNamed(node, 'Review')[0].click();
    buttonsNamed(node, 'Undo notes.txt')[0].click();
    buttonsNamed(node, 'Undo')[0].click();
    assert.deepEqual(h.posted.slice(1), [
      { type: 'reviewChanges', itemId: 'c1' },
      { type: 'undoChanges', itemId: 'c1', path: '/w/notes.txt' },
      { type: 'undoChanges', itemId: 'c1' },
    ]);

    // The extension's update after the Undo: one reverted, one a conflict.
    h.app.handle({
      type: 'update',
      item: {
        ...row,
        files: [
          { ...row.files[0], conflict: 'src/app.py changed since this turn; undo it by hand.' },
          { ...row.files[1], reverted: true },
        ],
        note: 'Undone: notes.txt. Not undone (changed since): src/app.py.',
      },
    });
    const after = h.doc.querySelector('[data-id="c1"]')!;
    assert.equal(buttonsNamed(after, 'Undo notes.txt').length, 0, 'an undone file has no Undo');
    assert.equal(after.querySelector('.changes-file.reverted .changes-state')?.textContent, 'undone');
    assert.equal(after.querySelector('.changes-conflict')?.textContent, 'src/app.py changed since this turn; undo it by hand.');
    assert.equal(after.querySelector('.changes-note')?.textContent, 'Undone: notes.txt. Not undone (changed since): src/app.py.');
    assert.equal(buttonsNamed(after, 'Undo')[0].disabled, false, 'a file is left to undo');

    h.app.handle({ type: 'update', item: { ...row, id: 'c1', files: row.files.map((f) => ({ ...f, reverted: true })) } });
    assert.equal(buttonsNamed(h.doc.querySelector('[data-id="c1"]')!, 'Undo')[0].disabled, true, 'nothing left to undo');
    assert.equal(
      h.doc.querySelector('[data-id="c1"] .changes-title')?.textContent,
      '2 files changed',
    );
    h.app.handle({ type: 'append', item: { id: 'c2', kind: 'changes', files: [row.files[1]] } });
    assert.equal(h.doc.querySelector('[data-id="c2"] .changes-title')?.textContent, '1 file changed');
  });

  it('a proposal card says where to review it and reopens its diff', () => {
    const h = harness();
    h.app.handle({ type: 'state', state: state([], { busy: true }) });
    const card: ChatItem = {
      id: 'p1',
      kind: 'permission',
      requestId: 'req-9',
      toolName: 'Write',
      message: 'Allow Write notes.txt?',
      detail: 'notes.txt\nhello',
      review: { file: 'notes.txt', editable: true, viewable: true, note: 'The change is open in a diff editor.' },
      state: 'pending',
    };
    h.app.handle({ type: 'append', item: card });
    const node = h.doc.querySelector('[data-id="p1"]')!;
    assert.equal(node.querySelector('.permission-review')?.textContent?.startsWith('The change is open in a diff editor.'), true);
    for (const name of ['Allow', 'Deny', 'Show diff']) assert.equal(buttonsNamed(node, name).length, 1, name);
    buttonsNamed(node, 'Show diff')[0].click();
    assert.deepEqual(h.posted.at(-1), { type: 'openProposal', requestId: 'req-9' });
    buttonsNamed(node, 'Allow')[0].click();
    assert.deepEqual(h.posted.at(-1), { type: 'permission', requestId: 'req-9', decision: 'allow' });
    assert.equal(buttonsNamed(h.doc.querySelector('[data-id="p1"]')!, 'Show diff').length, 0, 'answered: no diff to open');

    // A binary file: nothing to open.
    h.app.handle({
      type: 'append',
      item: { ...card, id: 'p2', requestId: 'req-10', review: { file: 'x.bin', editable: false, viewable: false, note: 'A binary file.' } },
    });
    assert.equal(buttonsNamed(h.doc.querySelector('[data-id="p2"]')!, 'Show diff').length, 0);
  });

});
