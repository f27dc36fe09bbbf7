/**
 * The webview's side of issues 15 and 16, in jsdom: question and plan cards,
 * the queue, the pickers, the meter, `/` and `@` completion, image chips and
 * a subagent's tool rows nested under its Agent row.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { parseFromWebview, type ChatItem } from '../src/shared/messages';
import { meterText } from '../src/webview/toolbar';

import { button, harness as jsdomHarness, state, type Harness } from './webviewHarness';

/** Renders at once: these tests look at the transcript right after each message. */
const harness = (): Harness => jsdomHarness({ renderNow: true });

const question = (multiSelect: boolean): Extract<ChatItem, { kind: 'permission' }> => ({
  id: 'p1',
  kind: 'permission',
  requestId: 'r1',
  toolName: 'AskUserQuestion',
  message: 'Allow AskUserQuestion?',
  detail: '{}',
  questions: [
    {
      question: 'Which color?',
      header: 'Color',
      multiSelect,
      options: [
        { label: 'Blue', description: 'calm' },
        { label: 'Red' },
      ],
    },
  ],
  state: 'pending',
});

describe('chat webview: the turn’s state', () => {
  it('a question card: its header, text and options; one click answers a single question', () => {
    const h = harness();
    h.app.handle({ type: 'state', state: state([question(false)]) });
    const card = h.doc.querySelector('[data-id="p1"]')!;
    assert.match(card.querySelector('legend')?.textContent ?? '', /^Color Which color\?$/);
    assert.equal(card.querySelector('input[type="text"]')?.getAttribute('aria-label'), 'Your own answer to: Which color?');
    button(card, 'Blue').click();
    assert.deepEqual(h.posted.at(-1), { type: 'permission', requestId: 'r1', decision: 'allow', answers: { 'Which color?': 'Blue' } });
    assert.equal(card.querySelectorAll('button').length, 0);
    assert.match(card.textContent ?? '', /Answered/);
  });

  it('multiSelect: checkboxes and Submit; your own words win; Decline denies', () => {
    const h = harness();
    h.app.handle({ type: 'state', state: state([question(true), { ...question(true), id: 'p2', requestId: 'r2' }, { ...question(false), id: 'p3', requestId: 'r3' }]) });
    const card = h.doc.querySelector('[data-id="p1"]')!;
    const checks = [...card.querySelectorAll<HTMLInputElement>('input[type="checkbox"]')];
    assert.deepEqual(checks.map((c) => c.value), ['Blue', 'Red']);
    checks.forEach((c) => (c.checked = true));
    button(card, 'Submit').click();
    assert.deepEqual(h.posted.at(-1), { type: 'permission', requestId: 'r1', decision: 'allow', answers: { 'Which color?': ['Blue', 'Red'] } });

    const second = h.doc.querySelector('[data-id="p2"]')!;
    second.querySelector<HTMLInputElement>('input[type="text"]')!.value = 'Green, please';
    button(second, 'Submit').click();
    assert.deepEqual(h.posted.at(-1), { type: 'permission', requestId: 'r2', decision: 'allow', answers: { 'Which color?': 'Green, please' } });

    button(h.doc.querySelector('[data-id="p3"]')!, 'Decline').click();
    assert.deepEqual(h.posted.at(-1), { type: 'permission', requestId: 'r3', decision: 'deny' });
  });

  it('a plan card renders the plan as markdown: Approve, Approve and accept edits, Keep planning with feedback', () => {
    const h = harness();
    const plan = (id: string): ChatItem => ({
      id,
      kind: 'permission',
      requestId: `r-${id}`,
      toolName: 'ExitPlanMode',
      message: 'Allow ExitPlanMode?',
      detail: '{}',
      plan: '# Tidy up\n- rename x',
      state: 'pending',
    });
    h.app.handle({ type: 'state', state: state([plan('a'), plan('b'), plan('c')]) });
    const a = h.doc.querySelector('[data-id="a"]')!;
    assert.equal(a.querySelector('.plan-body h1')?.textContent, 'Tidy up');
    assert.equal(a.querySelector('.plan-body li')?.textContent, 'rename x');
    button(a, 'Approve').click();
    assert.deepEqual(h.posted.at(-1), { type: 'permission', requestId: 'r-a', decision: 'allow' });
    button(h.doc.querySelector('[data-id="b"]')!, 'Approve and accept edits').click();
    assert.deepEqual(h.posted.at(-1), { type: 'permission', requestId: 'r-b', decision: 'allow', permissionMode: 'acceptEdits' });
    const c = h.doc.querySelector('[data-id="c"]')!;
    c.querySelector<HTMLInputElement>('input[aria-label="Feedback on the plan"]')!.value = 'add tests';
    button(c, 'Keep planning').click();
    assert.deepEqual(h.posted.at(-1), { type: 'permission', requestId: 'r-c', decision: 'deny', reason: 'add tests' });
  });

  it('queues while busy: Queue (or Ctrl+Enter) sends, the queue shows and removes', () => {
    const h = harness();
    h.app.handle({ type: 'state', state: state([], { busy: true }) });
    const queue = h.doc.querySelector<HTMLButtonElement>('#queue-send')!;
    assert.equal(queue.hidden, false);
    h.input.value = 'next one';
    h.key({ key: 'Enter' });
    assert.equal(h.posted.filter((m) => m.type === 'send').length, 0, 'Enter keeps the text while busy');
    queue.click();
    assert.deepEqual(h.posted.at(-1), { type: 'send', text: 'next one' });
    h.input.value = 'after that';
    h.key({ key: 'Enter', ctrlKey: true });
    assert.deepEqual(h.posted.at(-1), { type: 'send', text: 'after that' });

    h.app.handle({ type: 'queue', queued: [{ id: 'q1', text: 'next one', images: 0 }, { id: 'q2', text: 'after that', images: 1 }] });
    const list = h.doc.querySelector<HTMLElement>('#queue')!;
    assert.equal(list.hidden, false);
    assert.match(list.textContent ?? '', /Queued 1next one.*Queued 2after that \(\+1 image\)/);
    button(list, 'Remove queued prompt: next one').click();
    assert.deepEqual(h.posted.at(-1), { type: 'unqueue', id: 'q1' });
    h.app.handle({ type: 'queue', queued: [] });
    assert.equal(list.hidden, true);
    h.app.handle({ type: 'busy', busy: false });
    assert.equal(queue.hidden, true);
  });

  it('the model and mode pickers show the session’s settings and change them', () => {
    const h = harness();
    h.app.handle({ type: 'state', state: state([], { settings: { model: 'claude-x', permissionMode: 'plan' } }) });
    const model = h.doc.querySelector<HTMLSelectElement>('select[aria-label="Model"]')!;
    const mode = h.doc.querySelector<HTMLSelectElement>('select[aria-label="Permission mode"]')!;
    assert.equal(model.value, 'claude-x');
    assert.equal(mode.value, 'plan');
    mode.value = 'acceptEdits';
    mode.dispatchEvent(new h.dom.window.Event('change'));
    assert.deepEqual(h.posted.at(-1), { type: 'setPermissionMode', mode: 'acceptEdits' });
    model.value = 'opus';
    model.dispatchEvent(new h.dom.window.Event('change'));
    assert.deepEqual(h.posted.at(-1), { type: 'setModel', model: 'opus' });
    h.app.handle({ type: 'settings', settings: { model: '', permissionMode: 'acceptEdits' } });
    assert.equal(mode.value, 'acceptEdits');
    assert.equal(model.value, '');
  });

  it('the meter: context used of the window, and the cost', () => {
    const h = harness();
    const box = h.doc.querySelector<HTMLElement>('#meter')!;
    assert.equal(box.hidden, true);
    h.app.handle({ type: 'meter', meter: { contextTokens: 24_000, contextWindow: 200_000, costUsd: 0.0123 } });
    assert.equal(box.hidden, false);
    assert.equal(box.textContent, 'Context 12% of 200k · $0.01');
    assert.equal(h.doc.querySelector('meter')?.value, 0.12);
    assert.equal(meterText({ contextTokens: 900 }), 'Context 900 tokens');
    assert.equal(meterText({ costUsd: 0.004 }), '$0.0040');
  });

  it('/ at the start completes slash commands', () => {
    const h = harness();
    h.type('/');
    assert.deepEqual(h.posted.at(-1), { type: 'listCommands' });
    h.app.handle({
      type: 'commands',
      commands: [
        { name: 'clear', description: 'Clear the conversation' },
        { name: 'compact', description: 'Compact it', argumentHint: '[instructions]' },
      ],
    });
    h.type('/co');
    const list = h.doc.querySelector<HTMLElement>('#completions')!;
    assert.equal(list.hidden, false);
    assert.deepEqual([...list.querySelectorAll('.completion-label')].map((l) => l.textContent), ['/compact [instructions]']);
    h.key({ key: 'Enter' });
    assert.equal(h.input.value, '/compact ');
    assert.equal(list.hidden, true);
    assert.equal(h.posted.filter((m) => m.type === 'send').length, 0, 'Enter took the suggestion');
    h.type('not /a command');
    assert.equal(list.hidden, true);
  });

  it('@ completes workspace files (debounced), and the mention stays in the text', () => {
    const h = harness();
    h.type('see @no');
    assert.equal(h.posted.filter((m) => m.type === 'findFiles').length, 0, 'not before the pause');
    h.type('see @not');
    h.debounced();
    assert.deepEqual(h.posted.filter((m) => m.type === 'findFiles'), [{ type: 'findFiles', query: 'not' }]);
    h.app.handle({ type: 'files', query: 'not', paths: ['docs/notes.md', 'notes.txt'] });
    h.key({ key: 'ArrowDown' });
    h.key({ key: 'Tab' });
    assert.equal(h.input.value, 'see @notes.txt ');
    h.key({ key: 'Enter' });
    assert.deepEqual(h.posted.at(-1), { type: 'send', text: 'see @notes.txt ' });
  });

  it('a pasted image becomes a removable chip and goes with the next send', async () => {
    const h = harness();
    const paste = (type: string): Event => {
      const event = new h.dom.window.Event('paste', { bubbles: true, cancelable: true });
      const file = new h.dom.window.File(['x'], 'shot.png', { type });
      Object.defineProperty(event, 'clipboardData', { value: { items: [{ kind: 'file', getAsFile: () => file }] } });
      h.input.dispatchEvent(event);
      return event;
    };
    paste('image/png');
    paste('image/png');
    await new Promise((resolve) => setTimeout(resolve, 0));
    const chips = h.doc.querySelector<HTMLElement>('#attachments')!;
    assert.equal(chips.querySelectorAll('img').length, 2);
    assert.equal(chips.querySelector('img')?.getAttribute('src'), 'data:image/png;base64,iVBORw0K');
    button(chips, 'Remove image 2').click();
    assert.equal(chips.querySelectorAll('img').length, 1);
    h.input.value = 'what is this';
    h.key({ key: 'Enter' });
    assert.deepEqual(h.posted.at(-1), {
      type: 'send',
      text: 'what is this',
      attachments: [{ type: 'image', mediaType: 'image/png', data: 'iVBORw0K' }],
    });
    assert.equal(chips.hidden, true);
    // What the extension accepts from the view: images of the four types only.
    assert.deepEqual(
      parseFromWebview({ type: 'send', text: 'x', attachments: [{ type: 'image', mediaType: 'image/tiff', data: 'AA' }] }),
      { type: 'send', text: 'x' },
    );
  });

  it('nests a subagent’s tool rows under its Agent row, and keeps them on updates', () => {
    const h = harness();
    const agent: ChatItem = { id: 't1', kind: 'tool', toolUseId: 'agent-1', toolName: 'Agent', summary: 'look', isError: false, done: false };
    h.app.handle({ type: 'state', state: state([agent]) });
    h.app.handle({
      type: 'append',
      item: { id: 't2', kind: 'tool', toolUseId: 'read-1', toolName: 'Read', summary: 'inner.txt', isError: false, done: false, parentToolUseId: 'agent-1' },
    });
    h.app.handle({ type: 'update', item: { ...agent, done: true, summary: 'done' } });
    const outer = h.doc.querySelector('[data-id="t1"]')!;
    assert.equal(outer.querySelector('.tool-children [data-id="t2"] .tool-name')?.textContent, 'Read');
    assert.equal(h.doc.querySelectorAll('#transcript > .item').length, 1);
  });
});
