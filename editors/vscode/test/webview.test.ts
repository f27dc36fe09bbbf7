/**
 * The chat webview's message handling and markdown, in jsdom: streaming
 * appends, permission cards that resolve once, inert model text, keyboard
 * use and accessible names.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { JSDOM } from 'jsdom';

import { parseFromWebview, type ChatItem, type ChatViewState, type FromWebview } from '../src/shared/messages';
import { ChatApp } from '../src/webview/chatApp';
import { createMarkdownRenderer } from '../src/webview/markdown';
import { contentSecurityPolicy, SHELL_BODY, shellHtml } from '../src/webview/shell';

interface Harness {
  dom: JSDOM;
  doc: Document;
  app: ChatApp;
  posted: FromWebview[];
  /** Runs the deferred markdown renders, as the next animation frame would. */
  frame(): void;
}

function harness(): Harness {
  const dom = new JSDOM(`<!DOCTYPE html><html><body>${SHELL_BODY}</body></html>`, { pretendToBeVisual: true });
  const doc = dom.window.document;
  const posted: FromWebview[] = [];
  const queue: Array<() => void> = [];
  const renderer = createMarkdownRenderer(dom.window as unknown as Window);
  const app = new ChatApp(doc, { postMessage: (m) => posted.push(m) }, renderer, {
    schedule: (fn) => queue.push(fn),
  });
  app.start();
  return {
    dom,
    doc,
    app,
    posted,
    frame: () => {
      for (const fn of queue.splice(0)) fn();
    },
  };
}

function state(items: ChatItem[] = [], extra: Partial<ChatViewState> = {}): ChatViewState {
  return {
    sessions: [{ id: 's1', title: 'First', busy: false }],
    activeSessionId: 's1',
    items,
    busy: false,
    status: '',
    ...extra,
  };
}

function buttonsNamed(root: ParentNode, name: string): HTMLButtonElement[] {
  return [...root.querySelectorAll('button')].filter(
    (b) => (b.getAttribute('aria-label') ?? b.textContent ?? '').trim() === name,
  );
}

function assertInert(root: Element): void {
  assert.equal(root.querySelectorAll('script, iframe, object, embed, img, style, form').length, 0, root.innerHTML);
  for (const el of root.querySelectorAll('*')) {
    for (const attr of el.getAttributeNames()) {
      assert.ok(!attr.toLowerCase().startsWith('on'), `event handler attribute ${attr} in ${el.outerHTML}`);
    }
    for (const attr of ['href', 'src', 'action', 'xlink:href']) {
      const value = el.getAttribute(attr);
      if (value !== null) assert.match(value, /^(https?:|mailto:)/i, `unsafe ${attr}: ${el.outerHTML}`);
    }
  }
}

describe('markdown rendering', () => {
  const dom = new JSDOM('<!DOCTYPE html><body></body>');
  const md = createMarkdownRenderer(dom.window as unknown as Window);
  const render = (text: string): HTMLElement => {
    const div = dom.window.document.createElement('div');
    div.innerHTML = md.render(text);
    return div;
  };

  it('renders emphasis, lists, links and code', () => {
    const div = render('Some **bold** and `code`.\n\n- one\n- two\n\n[docs](https://example.com/docs)');
    assert.equal(div.querySelector('strong')?.textContent, 'bold');
    assert.equal(div.querySelector('code')?.textContent, 'code');
    assert.equal(div.querySelectorAll('li').length, 2);
    const a = div.querySelector('a');
    assert.equal(a?.getAttribute('href'), 'https://example.com/docs');
    assert.equal(a?.getAttribute('rel'), 'noopener noreferrer');
  });

  it('highlights fenced code blocks of known languages', () => {
    const div = render('```python\ndef f(x):\n    return "s"\n```');
    const code = div.querySelector('pre > code');
    assert.ok(code?.classList.contains('hljs'));
    assert.ok(div.querySelector('.hljs-keyword'), div.innerHTML);
    assert.ok(div.querySelector('.hljs-string'), div.innerHTML);
    assert.equal(code?.textContent, 'def f(x):\n    return "s"');
  });

  it('neutralises script injection in model text', () => {
    const attacks = [
      '<script>window.pwned = 1</script>',
      'hi <img src=x onerror="window.pwned=1"> there',
      '<a href="javascript:window.pwned=1">click</a>',
      '[click](javascript:window.pwned=1)',
      '[click](data:text/html,<script>alert(1)</script>)',
      '![tracker](https://evil.example/pixel.png)',
      '<iframe src="https://evil.example"></iframe>',
      '<svg onload="window.pwned=1"><circle/></svg>',
      '<style>body{display:none}</style>',
      '<div style="background:url(https://evil.example/x)">styled</div>',
      '```html\n<script>window.pwned=1</script>\n```',
      '<form action="https://evil.example"><button>go</button></form>',
    ];
    for (const attack of attacks) {
      const div = render(attack);
      assertInert(div);
      assert.equal(div.querySelector('[style]'), null, attack);
    }
    // Raw HTML is shown, not interpreted.
    assert.match(render('<script>window.pwned = 1</script>').textContent ?? '', /<script>window\.pwned = 1<\/script>/);
    // An image becomes a plain link to it: nothing is fetched.
    const img = render('![tracker](https://evil.example/pixel.png)');
    assert.equal(img.querySelector('a')?.getAttribute('href'), 'https://evil.example/pixel.png');
  });
});

describe('chat webview', () => {
  it('asks the extension for its state when it starts', () => {
    const h = harness();
    assert.deepEqual(h.posted, [{ type: 'ready' }]);
  });

  it('streams tokens into the open assistant message', () => {
    const h = harness();
    h.app.handle({ type: 'state', state: state([{ id: 'u1', kind: 'user', text: 'hi' }], { busy: true }) });
    h.app.handle({ type: 'append', item: { id: 'a1', kind: 'assistant', text: '', streaming: true } });
    for (const t of ['Hel', 'lo **wor', 'ld**', ' and `co', 'de`']) {
      h.app.handle({ type: 'appendText', itemId: 'a1', text: t });
    }
    const body = (): Element => h.doc.querySelector('[data-id="a1"] .body')!;
    h.frame();
    assert.equal(body().textContent?.trim(), 'Hello world and code');
    assert.equal(body().querySelector('strong')?.textContent, 'world');
    h.app.handle({ type: 'appendText', itemId: 'a1', text: '!' });
    h.app.handle({ type: 'update', item: { id: 'a1', kind: 'assistant', text: 'Hello **world** and `code`!', streaming: false } });
    h.app.handle({ type: 'busy', busy: false });
    assert.equal(body().textContent?.trim(), 'Hello world and code!');
    assert.equal(h.doc.querySelector('[data-id="a1"]')?.getAttribute('aria-busy'), 'false');
    // One node per item, in order.
    assert.deepEqual(
      [...h.doc.querySelectorAll('#transcript > .item')].map((n) => (n as HTMLElement).dataset.id),
      ['u1', 'a1'],
    );
  });

  it('keeps streamed script injection inert', () => {
    const h = harness();
    h.app.handle({ type: 'state', state: state() });
    h.app.handle({ type: 'append', item: { id: 'a1', kind: 'assistant', text: '', streaming: true } });
    for (const t of ['<scr', 'ipt>window.pwned=1</scr', 'ipt><img src=x one', 'rror=alert(1)>']) {
      h.app.handle({ type: 'appendText', itemId: 'a1', text: t });
      h.frame();
    }
    const transcript = h.doc.querySelector('#transcript')!;
    assertInert(transcript);
    assert.match(transcript.textContent ?? '', /<script>window\.pwned=1<\/script>/);
    // User text is plain text too.
    h.app.handle({ type: 'append', item: { id: 'u2', kind: 'user', text: '<b>not bold</b>' } });
    assert.equal(h.doc.querySelector('[data-id="u2"] b'), null);
    assert.equal(h.doc.querySelector('[data-id="u2"] .body')?.textContent, '<b>not bold</b>');
  });

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

  it('Enter sends, Shift+Enter does not, and nothing is sent while busy', () => {
    const h = harness();
    h.app.handle({ type: 'state', state: state() });
    const input = h.doc.querySelector<HTMLTextAreaElement>('#message')!;
    const key = (init: KeyboardEventInit): void => {
      input.dispatchEvent(new h.dom.window.KeyboardEvent('keydown', { bubbles: true, cancelable: true, ...init }));
    };
    input.value = 'line one';
    key({ key: 'Enter', shiftKey: true });
    assert.equal(h.posted.filter((m) => m.type === 'send').length, 0);
    key({ key: 'Enter' });
    assert.deepEqual(h.posted.filter((m) => m.type === 'send'), [{ type: 'send', text: 'line one' }]);
    assert.equal(input.value, '');
    key({ key: 'Enter' });
    assert.equal(h.posted.filter((m) => m.type === 'send').length, 1, 'an empty box sends nothing');

    h.app.handle({ type: 'busy', busy: true });
    input.value = 'while busy';
    key({ key: 'Enter' });
    assert.equal(h.posted.filter((m) => m.type === 'send').length, 1);
    assert.equal(input.value, 'while busy', 'the text is kept');

    const send = h.doc.querySelector<HTMLButtonElement>('#send')!;
    const stop = h.doc.querySelector<HTMLButtonElement>('#stop')!;
    assert.equal(send.hidden, true);
    assert.equal(stop.hidden, false);
    stop.click();
    assert.deepEqual(h.posted.at(-1), { type: 'stop' });

    h.app.handle({ type: 'busy', busy: false });
    assert.equal(stop.hidden, true);
    send.click();
    assert.deepEqual(h.posted.at(-1), { type: 'send', text: 'while busy' });
  });

  it('names its controls for screen readers', () => {
    const h = harness();
    h.app.handle({ type: 'state', state: state([], { busy: true }) });
    assert.equal(h.doc.querySelector('textarea')?.getAttribute('aria-label'), 'Message Dave');
    for (const name of ['Send', 'Stop', 'New session', 'Delete session']) {
      assert.equal(buttonsNamed(h.doc, name).length, 1, name);
    }
    const transcript = h.doc.querySelector('#transcript')!;
    assert.equal(transcript.getAttribute('role'), 'log');
    assert.equal(transcript.getAttribute('aria-live'), 'polite');
    assert.equal(transcript.getAttribute('aria-busy'), 'true');
    assert.equal(h.doc.querySelector('#session-select')?.getAttribute('aria-label'), 'Session');
  });

  it('lists sessions, switches and deletes', () => {
    const h = harness();
    h.app.handle({
      type: 'state',
      state: state([], {
        sessions: [
          { id: 's1', title: 'First', busy: false },
          { id: 's2', title: 'Second', busy: true },
          { id: 's3', title: 'From the server', busy: false, resumed: true },
        ],
        activeSessionId: 's1',
      }),
    });
    const select = h.doc.querySelector<HTMLSelectElement>('#session-select')!;
    assert.deepEqual(
      [...select.options].map((o) => o.textContent),
      ['First', 'Second (working)', 'From the server (resumed)'],
    );
    assert.equal(select.value, 's1');
    select.value = 's2';
    select.dispatchEvent(new h.dom.window.Event('change'));
    assert.deepEqual(h.posted.at(-1), { type: 'switchSession', sessionId: 's2' });
    buttonsNamed(h.doc, 'New session')[0].click();
    assert.deepEqual(h.posted.at(-1), { type: 'newSession' });
    buttonsNamed(h.doc, 'Delete session')[0].click();
    assert.deepEqual(h.posted.at(-1), { type: 'deleteSession', sessionId: 's1' });
  });

  it('renders tool rows, errors and notices as text', () => {
    const h = harness();
    h.app.handle({
      type: 'state',
      state: state([
        { id: 't1', kind: 'tool', toolUseId: 'tu1', toolName: 'Write', summary: 'notes.txt (5 bytes)', isError: false, done: true },
        { id: 't2', kind: 'tool', toolUseId: 'tu2', toolName: 'Bash', summary: '<b>ls</b>', isError: true, done: true },
        { id: 'e1', kind: 'error', message: 'API Error: 400 <i>bad</i>' },
        { id: 'n1', kind: 'notice', text: 'Stopped.' },
      ]),
    });
    const t1 = h.doc.querySelector('[data-id="t1"]')!;
    assert.ok(t1.classList.contains('done'));
    assert.match(t1.textContent ?? '', /Write.*notes\.txt \(5 bytes\)/);
    const t2 = h.doc.querySelector('[data-id="t2"]')!;
    assert.ok(t2.classList.contains('failed'));
    assert.equal(t2.querySelector('b'), null);
    assert.equal(h.doc.querySelector('[data-id="e1"] i'), null);
    assert.match(h.doc.querySelector('[data-id="e1"]')?.textContent ?? '', /API Error: 400 <i>bad<\/i>/);
  });

  it('validates messages from the webview', () => {
    assert.deepEqual(parseFromWebview({ type: 'send', text: 'x' }), { type: 'send', text: 'x' });
    assert.equal(parseFromWebview({ type: 'send', text: 5 }), undefined);
    assert.equal(parseFromWebview({ type: 'permission', requestId: 'r', decision: 'maybe' }), undefined);
    assert.deepEqual(parseFromWebview({ type: 'permission', requestId: 'r', decision: 'deny', reason: 'no' }), {
      type: 'permission',
      requestId: 'r',
      decision: 'deny',
      reason: 'no',
    });
    assert.equal(parseFromWebview({ type: 'exec', command: 'rm' }), undefined);
    assert.equal(parseFromWebview(null), undefined);
    assert.deepEqual(parseFromWebview({ type: 'stop', extra: 1 }), { type: 'stop' });
  });

  it('ships a strict Content-Security-Policy', () => {
    const csp = contentSecurityPolicy('vscode-resource:', 'abc123');
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'nonce-abc123'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|https?:|\*/);
    const html = shellHtml({ cspSource: 'vscode-resource:', nonce: 'abc123', scriptUri: 'vscode-resource:/w.js', styleUri: 'vscode-resource:/c.css' });
    const dom = new JSDOM(html);
    const scripts = [...dom.window.document.querySelectorAll('script')];
    assert.equal(scripts.length, 1);
    assert.equal(scripts[0].getAttribute('nonce'), 'abc123');
    assert.equal(dom.window.document.querySelector('meta[http-equiv="Content-Security-Policy"]')?.getAttribute('content'), csp);
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

  it('validates the review messages', () => {
    assert.deepEqual(parseFromWebview({ type: 'openProposal', requestId: 'r' }), { type: 'openProposal', requestId: 'r' });
    assert.equal(parseFromWebview({ type: 'openProposal' }), undefined);
    assert.deepEqual(parseFromWebview({ type: 'reviewChanges', itemId: 'c' }), { type: 'reviewChanges', itemId: 'c' });
    assert.deepEqual(parseFromWebview({ type: 'undoChanges', itemId: 'c', path: 5 }), { type: 'undoChanges', itemId: 'c' });
    assert.deepEqual(parseFromWebview({ type: 'undoChanges', itemId: 'c', path: '/p' }), { type: 'undoChanges', itemId: 'c', path: '/p' });
    assert.equal(parseFromWebview({ type: 'undoChanges' }), undefined);
  });
});
