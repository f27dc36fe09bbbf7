/**
 * Rewind and fork in the webview (issue 27), in jsdom: each message of yours
 * has "Rewind to here", "Rewind chat only" and "Fork from here"; a rewind's
 * card lists the restored and the kept files, each with Review; the messages
 * they post pass the extension's validation and nothing else does.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { parseFromWebview, type ChatItem } from '../src/shared/messages';
import { buttonsNamed, harness, state } from './webviewHarness';

describe('chat webview: rewind and fork', () => {
  it('a message of yours has Rewind to here, Rewind chat only and Fork from here', () => {
    const h = harness();
    const items: ChatItem[] = [
      { id: 'u1', kind: 'user', text: 'first' },
      { id: 'a1', kind: 'assistant', text: 'one', streaming: false },
      { id: 'u2', kind: 'user', text: 'second' },
    ];
    h.app.handle({ type: 'state', state: state(items) });
    const second = h.doc.querySelector('[data-id="u2"]')!;
    buttonsNamed(second, 'Rewind to here')[0].click();
    buttonsNamed(second, 'Rewind chat only')[0].click();
    buttonsNamed(h.doc.querySelector('[data-id="u1"]')!, 'Fork from here')[0].click();
    assert.deepEqual(h.posted.filter((m) => m.type !== 'ready'), [
      { type: 'rewind', itemId: 'u2', files: true },
      { type: 'rewind', itemId: 'u2', files: false },
      { type: 'fork', itemId: 'u1' },
    ]);
    assert.equal(buttonsNamed(h.doc.querySelector('[data-id="a1"]')!, 'Rewind to here').length, 0, "Dave's answers have none");
  });

  it("a rewind's card lists the restored and kept files, each with Review", () => {
    const h = harness();
    const card: ChatItem = {
      id: 'r1',
      kind: 'rewind',
      turn: 2,
      prompt: 'make b.txt',
      files: true,
      rows: [
        { path: '/ws/b.txt', label: 'b.txt' },
        { path: '/ws/c.txt', label: 'c.txt', conflict: 'c.txt changed since; kept as it is' },
      ],
    };
    h.app.handle({ type: 'state', state: state([{ id: 'u1', kind: 'user', text: 'first' }, card]) });
    const node = h.doc.querySelector('[data-id="r1"]')!;
    assert.equal(node.getAttribute('aria-label'), 'Rewound to before turn 2');
    const text = node.textContent ?? '';
    assert.match(text, /make b\.txt/);
    assert.match(text, /b\.txtrestored/);
    assert.match(text, /c\.txtkept.*changed since; kept as it is/);
    assert.match(text, /1 file restored; 1 file kept: changed since, so not overwritten\./);
    buttonsNamed(node, 'Review c.txt')[0].click();
    assert.deepEqual(h.posted.at(-1), { type: 'reviewRewind', itemId: 'r1', path: '/ws/c.txt' });

    h.app.handle({ type: 'update', item: { ...card, files: false, rows: [] } });
    const chatOnly = h.doc.querySelector('[data-id="r1"]')!;
    assert.equal(chatOnly.getAttribute('aria-label'), 'Rewound to before turn 2 (conversation only)');
    assert.match(chatOnly.textContent ?? '', /The files were left as they are\./);
  });

  it('the extension accepts only well-formed rewind, fork and review messages', () => {
    assert.deepEqual(parseFromWebview({ type: 'rewind', itemId: 'u1' }), { type: 'rewind', itemId: 'u1', files: true });
    assert.deepEqual(parseFromWebview({ type: 'rewind', itemId: 'u1', files: false }), { type: 'rewind', itemId: 'u1', files: false });
    assert.equal(parseFromWebview({ type: 'rewind', itemId: 3 }), undefined);
    assert.deepEqual(parseFromWebview({ type: 'fork', itemId: 'u1', turn: 9 }), { type: 'fork', itemId: 'u1' });
    assert.equal(parseFromWebview({ type: 'fork' }), undefined);
    assert.equal(parseFromWebview({ type: 'reviewRewind', itemId: 'r1' }), undefined);
  });
});
