/**
 * The chat webview's message handling and markdown, in jsdom: streaming
 * appends, inert model text, keyboard use, sessions, rows and accessible
 * names (the cards are webviewCards.test.ts's).
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { JSDOM } from 'jsdom';

import { parseFromWebview } from '../src/shared/messages';
import { createMarkdownRenderer } from '../src/webview/markdown';
import { contentSecurityPolicy, shellHtml } from '../src/webview/shell';
import { assertInert, buttonsNamed, harness, state } from './webviewHarness';

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

  it('validates the review messages', () => {
    assert.deepEqual(parseFromWebview({ type: 'openProposal', requestId: 'r' }), { type: 'openProposal', requestId: 'r' });
    assert.equal(parseFromWebview({ type: 'openProposal' }), undefined);
    assert.deepEqual(parseFromWebview({ type: 'reviewChanges', itemId: 'c' }), { type: 'reviewChanges', itemId: 'c' });
    assert.deepEqual(parseFromWebview({ type: 'undoChanges', itemId: 'c', path: 5 }), { type: 'undoChanges', itemId: 'c' });
    assert.deepEqual(parseFromWebview({ type: 'undoChanges', itemId: 'c', path: '/p' }), { type: 'undoChanges', itemId: 'c', path: '/p' });
    assert.equal(parseFromWebview({ type: 'undoChanges' }), undefined);
  });
});
