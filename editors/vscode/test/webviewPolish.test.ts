/**
 * Issue 18 in the webview (jsdom): the retry countdown in the status line, an
 * error or a card that waits for the user scrolled into view, Send scrolling
 * to the bottom, Stop and Escape (the focus back in the message box), context
 * chips and the bubble that took them, Copy, Insert at cursor and Apply on every
 * code block, a file tool's row that opens its file, and the first open.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import type { ChatItem, ContextChip, RetryInfo } from '../src/shared/messages';

import { button, harness as jsdomHarness, state, type Harness } from './webviewHarness';

/** Renders at once: these tests look at the transcript right after each message. */
const harness = (): Harness => jsdomHarness({ renderNow: true });

const retry: RetryInfo = { attempt: 2, maxAttempts: 10, retryInMs: 8000, reason: 'API Error 500' };

function chip(over: Partial<ContextChip> = {}): ContextChip {
  return {
    id: 'c1',
    label: 'greet.py:1-2',
    path: '/w/greet.py',
    languageId: 'python',
    startLine: 1,
    endLine: 2,
    selection: { start: { line: 0, character: 0 }, end: { line: 1, character: 19 } },
    text: 'def greet(name):\n    return name',
    ...over,
  };
}

describe('retries, errors and what waits for the user are seen', () => {
  it('a retrying status counts down to the retry, and Stop shows', () => {
    const h = harness();
    h.app.handle({ type: 'state', state: state([], { busy: true }) });
    h.app.handle({ type: 'status', text: 'Retrying in 8 s (attempt 2 of 10): API Error 500', retry });
    assert.equal(h.status(), 'Retrying in 8 s (attempt 2 of 10): API Error 500');
    h.advance(3000);
    assert.equal(h.status(), 'Retrying in 5 s (attempt 2 of 10): API Error 500');
    h.advance(6000);
    assert.equal(h.status(), 'Retrying now (attempt 2 of 10): API Error 500');
    const stop = h.doc.querySelector<HTMLButtonElement>('#stop')!;
    assert.equal(stop.hidden, false);
    // The next status ends the countdown.
    h.app.handle({ type: 'status', text: 'Working…' });
    h.advance(2000);
    assert.equal(h.status(), 'Working…');
  });

  it('an error scrolls into view, as does a new permission card; Send scrolls to the bottom', () => {
    const h = harness();
    h.app.handle({ type: 'state', state: state([{ id: 'u1', kind: 'user', text: 'hi' }], { busy: true }) });
    h.app.handle({ type: 'append', item: { id: 'e1', kind: 'error', message: 'Claude Code: API Error 500' } });
    assert.deepEqual(h.revealed.map((n) => (n as HTMLElement).dataset.id), ['e1']);
    h.app.handle({
      type: 'append',
      item: { id: 'p1', kind: 'permission', requestId: 'r1', toolName: 'Write', message: 'Allow Write a.txt?', detail: 'a.txt', state: 'pending' },
    });
    assert.deepEqual(h.revealed.map((n) => (n as HTMLElement).dataset.id), ['e1', 'p1']);

    h.app.handle({ type: 'busy', busy: false });
    const transcript = h.doc.querySelector<HTMLElement>('#transcript')!;
    // Scrolled up, then the user sends: the bubble brings the transcript to its bottom.
    Object.defineProperty(transcript, 'scrollHeight', { value: 5000, configurable: true });
    Object.defineProperty(transcript, 'clientHeight', { value: 300, configurable: true });
    transcript.scrollTop = 0;
    const box = h.doc.querySelector<HTMLTextAreaElement>('#message')!;
    box.value = 'next question';
    h.doc.querySelector<HTMLButtonElement>('#send')!.click();
    h.app.handle({ type: 'append', item: { id: 'u2', kind: 'user', text: 'next question' } });
    assert.equal(transcript.scrollTop, 5000);
  });
});

describe('Stop and Escape', () => {
  it('Stop puts the focus back in the message box', () => {
    const h = harness();
    h.app.handle({ type: 'state', state: state([], { busy: true }) });
    const stop = h.doc.querySelector<HTMLButtonElement>('#stop')!;
    stop.focus();
    stop.click();
    assert.deepEqual(h.posted.at(-1), { type: 'stop' });
    assert.equal(h.doc.activeElement, h.doc.querySelector('#message'));
    // The answer ends and Stop hides: the focus stays in the box.
    h.app.handle({ type: 'busy', busy: false });
    assert.equal(h.doc.activeElement, h.doc.querySelector('#message'));
  });

  it('Escape stops the answer while the chat has the focus, not while idle', () => {
    const h = harness();
    h.app.handle({ type: 'state', state: state([], { busy: false }) });
    const box = h.doc.querySelector<HTMLTextAreaElement>('#message')!;
    const escape = (target: Element): void => {
      target.dispatchEvent(new h.doc.defaultView!.KeyboardEvent('keydown', { key: 'Escape', bubbles: true, cancelable: true }));
    };
    escape(box);
    assert.equal(h.posted.filter((m) => m.type === 'stop').length, 0);
    h.app.handle({ type: 'busy', busy: true });
    escape(box);
    assert.equal(h.posted.filter((m) => m.type === 'stop').length, 1);
    escape(h.doc.querySelector('#transcript')!);
    assert.equal(h.posted.filter((m) => m.type === 'stop').length, 2);
    assert.equal(h.doc.activeElement, box);
  });
});

describe('context chips', () => {
  it('a chip shows in the composer, × removes it, and a message with only a chip can be sent', () => {
    const h = harness();
    h.app.handle({ type: 'state', state: state([]) });
    h.app.handle({ type: 'chips', chips: [chip()] });
    const chips = h.doc.querySelector<HTMLElement>('#chips')!;
    assert.equal(chips.hidden, false);
    assert.equal(chips.querySelector('.chip-label')?.textContent, 'greet.py:1-2');
    h.doc.querySelector<HTMLButtonElement>('#send')!.click();
    assert.deepEqual(h.posted.at(-1), { type: 'send', text: '' });
    button(chips, 'Remove greet.py:1-2 from the next message').click();
    assert.deepEqual(h.posted.at(-1), { type: 'removeContext', id: 'c1' });
    h.app.handle({ type: 'chips', chips: [] });
    assert.equal(chips.hidden, true);
  });

  it('the bubble shows the file and lines that went with the message, not fences', () => {
    const h = harness();
    h.app.handle({ type: 'state', state: state([{ id: 'u1', kind: 'user', text: 'what does it do?', context: ['greet.py:1-2'] }]) });
    const bubble = h.doc.querySelector('.item.user')!;
    assert.equal(bubble.querySelector('.user-context .chip')?.textContent, 'greet.py:1-2');
    assert.equal(bubble.querySelector('.body')?.textContent, 'what does it do?');
    assert.doesNotMatch(bubble.textContent ?? '', /```/);
  });
});

describe('code blocks and tool rows', () => {
  it('every code block of an answer has Copy and Insert at cursor with its exact code', () => {
    const h = harness();
    const text = 'Two:\n\n```python\ndef a():\n    return 1\n```\n\nand\n\n```\nplain <b>x</b>\n```\n';
    h.app.handle({ type: 'state', state: state([{ id: 'a1', kind: 'assistant', text, streaming: false }]) });
    const blocks = [...h.doc.querySelectorAll('.item.assistant .code-block')];
    assert.equal(blocks.length, 2);
    button(blocks[0], 'Copy').click();
    assert.deepEqual(h.posted.at(-1), { type: 'copyCode', code: 'def a():\n    return 1' });
    button(blocks[1], 'Insert at cursor').click();
    assert.deepEqual(h.posted.at(-1), { type: 'insertCode', code: 'plain <b>x</b>' });
  });

  it("every finished answer's code block has Apply, with the fence's info string that may name its file", () => {
    const h = harness();
    const text = '```python title="greet.py"\nprint(1)\n```\n\n```\nx\n```\n';
    h.app.handle({ type: 'state', state: state([{ id: 'a1', kind: 'assistant', text, streaming: true }]) });
    assert.equal(h.doc.querySelectorAll('.item.assistant .apply-code').length, 0, 'not while it streams');
    h.app.handle({ type: 'state', state: state([{ id: 'a1', kind: 'assistant', text, streaming: false }]) });
    const blocks = [...h.doc.querySelectorAll('.item.assistant .code-block')];
    button(blocks[0], 'Apply').click();
    assert.deepEqual(h.posted.at(-1), { type: 'applyCode', code: 'print(1)', info: 'python title="greet.py"' });
    button(blocks[1], 'Apply').click();
    assert.deepEqual(h.posted.at(-1), { type: 'applyCode', code: 'x' });
  });

  it("a file tool's row opens its file", () => {
    const h = harness();
    const row: ChatItem = {
      id: 't1',
      kind: 'tool',
      toolUseId: 'u1',
      toolName: 'Write',
      summary: 'b.txt (11 bytes)',
      isError: false,
      done: true,
      filePath: '/w/b.txt',
    };
    h.app.handle({ type: 'state', state: state([row]) });
    const open = h.doc.querySelector<HTMLButtonElement>('.item.tool button.tool-open')!;
    assert.equal(open.textContent, 'b.txt (11 bytes)');
    open.click();
    assert.deepEqual(h.posted.at(-1), { type: 'openFile', path: '/w/b.txt' });
  });
});

describe('the first open', () => {
  it('says what Dave is and how to start, and the session list is not an empty dropdown', () => {
    const h = harness();
    h.app.handle({
      type: 'state',
      state: { ...state([]), sessions: [], activeSessionId: undefined, welcome: { backend: 'claude', model: '' } },
    });
    const welcome = h.doc.querySelector('#transcript .welcome')?.textContent ?? '';
    assert.match(welcome, /Claude Code/);
    assert.match(welcome, /default model/);
    assert.match(welcome, /Type a question/);
    const select = h.doc.querySelector<HTMLSelectElement>('#session-select')!;
    assert.equal(select.options.length, 1);
    assert.equal(select.options[0]?.textContent, 'No sessions yet');
    // The first item replaces it.
    h.app.handle({ type: 'append', item: { id: 'u1', kind: 'user', text: 'hi' } });
    assert.equal(h.doc.querySelector('#transcript .welcome'), null);
  });

  it('one New session control, and placeholders that fit a narrow side bar', () => {
    const h = harness();
    assert.equal([...h.doc.querySelectorAll('button')].filter((b) => b.textContent === 'New session').length, 1);
    h.app.handle({
      type: 'state',
      state: state([{ id: 'p1', kind: 'permission', requestId: 'r1', toolName: 'Bash', message: 'Allow Bash ls?', detail: 'ls', state: 'pending' }]),
    });
    const reason = h.doc.querySelector<HTMLInputElement>('.permission-reason')!;
    assert.ok(reason.placeholder.length <= 28, reason.placeholder);
    assert.match(reason.title, /model is told/);
  });
});
