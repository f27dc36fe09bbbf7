/**
 * The built .vsix in a real VS Code: code-server (VS Code in the browser)
 * driven through Debian's Chromium with playwright-core. Opens a folder, opens
 * the Dave view, asks a question and sees the streamed answer, allows a Write
 * and sees the file appear, stops a slow answer, edits a Write's proposal in
 * the diff editor and accepts it from the editor title, reviews and undoes the
 * turn, sends an editor's selection with a prompt (and the model reads it back
 * through its getCurrentSelection tool), inserts a code block at the cursor
 * and applies another as a reviewed edit (diff, edit, Accept), answers the
 * model's question by clicking an option, and saves screenshots.
 *
 * scripts/test.sh installs the tools (scripts/e2e-setup.sh) and passes their
 * paths in DAVE_E2E_CHROMIUM, DAVE_E2E_NODE24_BIN and DAVE_E2E_CODE_SERVER;
 * without them this file skips.
 */

import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';

import type { Frame, Page } from 'playwright-core';

import { ask, chatFrame, e2eSkip as skip, idle, messageBox, openChat, openDave, screenshot, send, type DaveWindow } from './codeServer';
import { sleep } from './helpers';

const STEP = 90_000;

async function waitForFile(file: string, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (existsSync(file)) return readFileSync(file, 'utf8');
    await sleep(200);
  }
  throw new Error(`${file} did not appear`);
}

/** Waits until the open diff editor's right side shows `text` (Monaco renders spaces as U+00A0). */
async function rightSideShows(page: Page, text: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  let seen: string[] = [];
  while (Date.now() < deadline) {
    seen = await page.evaluate(() =>
      [...document.querySelectorAll('.monaco-diff-editor .editor.modified .view-line')].map((line) =>
        (line.textContent ?? '').replace(/\u00a0/g, ' '),
      ),
    );
    if (seen.some((line) => line.includes(text))) return;
    await sleep(200);
  }
  throw new Error(`the diff editor's right side never showed ${JSON.stringify(text)}; it showed ${JSON.stringify(seen)}`);
}

/** The Claude Code transcripts (`*.jsonl`) under a folder, and their text. */
function transcripts(dir: string): string {
  let text = '';
  if (!existsSync(dir)) return text;
  for (const name of readdirSync(dir)) {
    const file = path.join(dir, name);
    if (statSync(file).isDirectory()) text += transcripts(file);
    else if (name.endsWith('.jsonl')) text += readFileSync(file, 'utf8');
  }
  return text;
}

describe('the extension in a real VS Code (code-server + Chromium)', { skip }, () => {
  let window: DaveWindow | undefined;
  let page: Page;
  let chat: Frame;
  let workspace: string;
  let home: string;

  before(async () => {
    window = await openDave({
      name: 'e2e',
      folder: 'project',
      prepare: (folder) => {
        writeFileSync(path.join(folder, 'README.md'), '# e2e project\n');
        writeFileSync(path.join(folder, 'greet.py'), 'def greet(name):\n    return f"hi {name}"\n\n\nprint(greet("a"))\n');
      },
      // The CLI retries a failed model request up to 3 times (about 4 s), as a user's would.
      env: { CLAUDE_CODE_MAX_RETRIES: '3' },
      finalScreenshot: 'vscode-final.png',
    });
    ({ page, workspace, home } = window);
  }, { timeout: 240_000 });

  after(async () => {
    await window?.close();
  });

  it('opens the Dave view from the activity bar', { timeout: STEP }, async () => {
    chat = await openChat(page);
    for (const name of ['Send', 'New session', 'Delete session']) {
      assert.equal(await chat.getByRole('button', { name, exact: true }).count(), 1, name);
    }
    // The first open says what answers and how to start, not an empty dropdown.
    await chat.locator('#transcript .welcome', { hasText: 'Claude Code' }).waitFor({ timeout: 30_000 });
    assert.equal((await chat.locator('#session-select option').allTextContents()).join('|'), 'No sessions yet');
    await screenshot(page, 'vscode-first-open.png');
  });

  it('streams an answer into the webview', { timeout: STEP }, async () => {
    await send(chat, 'hello from code-server');
    const answer = chat.locator('.item.assistant .body').last();
    await chat.locator('.item.assistant', { hasText: 'You said: hello from code-server' }).waitFor({ timeout: 60_000 });
    assert.equal((await answer.textContent())?.trim(), 'You said: hello from code-server');
    await idle(chat);
  });

  it('asks permission for a Write, and Allow writes the file', { timeout: STEP }, async () => {
    await send(chat, 'write from-vscode.txt made-in-a-real-vscode');
    const allow = chat.getByRole('button', { name: 'Allow', exact: true });
    await allow.waitFor({ timeout: 60_000 });
    // With a server from issue 12 on, the button names what it allows ("Allow always: all file edits…").
    assert.equal(await chat.getByRole('button', { name: /^Allow always/ }).count(), 1);
    assert.equal(await chat.getByRole('button', { name: 'Deny', exact: true }).count(), 1);
    await screenshot(page, 'vscode-permission.png');
    await allow.click();
    const content = await waitForFile(path.join(workspace, 'from-vscode.txt'), 60_000);
    assert.equal(content, 'made-in-a-real-vscode');
    await chat.locator('.item.permission', { hasText: 'Allowed' }).waitFor({ timeout: 30_000 });
    await chat.locator('.item.tool.done', { hasText: 'from-vscode.txt' }).waitFor({ timeout: 30_000 });
    await idle(chat);
  });

  it('Stop cancels a slow answer', { timeout: STEP }, async () => {
    const answersBefore = await chat.locator('.item.assistant').count();
    await send(chat, 'slow 600 50');
    const stop = chat.getByRole('button', { name: 'Stop', exact: true });
    await stop.waitFor({ state: 'visible', timeout: 30_000 });
    // Let a few tokens arrive first.
    await chat.locator('.item.assistant').nth(answersBefore).waitFor({ timeout: 60_000 });
    await stop.click();
    await chat.locator('.item.notice', { hasText: 'Stopped.' }).waitFor({ timeout: 30_000 });
    await idle(chat);
    await screenshot(page, 'vscode-chat.png');
  });

  it('a retried error shows "Retrying" with Stop, and the error scrolls into view', { timeout: STEP }, async () => {
    await send(chat, 'error 500 e2e-model-down');
    // The first retry comes a second or so after the failed request.
    const status = chat.locator('#status', { hasText: /Retrying (in \d+ s|now) \(attempt \d of 3\): API Error 500/ });
    await status.waitFor({ timeout: 5_000 });
    assert.equal(await chat.getByRole('button', { name: 'Stop', exact: true }).isVisible(), true);
    await screenshot(page, 'vscode-retrying.png');
    const error = chat.locator('.item.error').last();
    await error.waitFor({ timeout: 60_000 });
    await idle(chat);
    // Seen without scrolling: inside the transcript's visible box.
    const seen = await error.evaluate((node) => {
      const box = node.getBoundingClientRect();
      const view = document.querySelector('#transcript')!.getBoundingClientRect();
      return box.top >= view.top - 1 && box.bottom <= view.bottom + 1;
    });
    assert.equal(seen, true, 'the error is in view');
    await screenshot(page, 'vscode-error.png');
  });

  it('Ctrl+Alt+D focuses the message box; Escape stops the answer and the focus stays there', { timeout: STEP }, async () => {
    // From the editor area, the key brings the focus to the chat's message box.
    await page.locator('.part.editor').first().click();
    await page.keyboard.press('Control+Alt+d');
    const focused = async (): Promise<boolean> =>
      chat.evaluate(() => document.hasFocus() && document.activeElement?.getAttribute('aria-label') === 'Message Dave');
    const deadline = Date.now() + 10_000;
    while (!(await focused()) && Date.now() < deadline) await sleep(100);
    assert.equal(await focused(), true, 'Ctrl+Alt+D put the focus in the message box');

    const stopped = await chat.locator('.item.notice', { hasText: 'Stopped.' }).count();
    const answersBefore = await chat.locator('.item.assistant').count();
    await page.keyboard.type('slow 600 50');
    await page.keyboard.press('Enter');
    await chat.locator('.item.assistant').nth(answersBefore).waitFor({ timeout: 60_000 });
    await page.keyboard.press('Escape');
    await chat.locator('.item.notice', { hasText: 'Stopped.' }).nth(stopped).waitFor({ timeout: 30_000 });
    await idle(chat);
    assert.equal(await focused(), true, 'the focus is back in the message box');
  });

  it('a Write proposal opens the diff editor; the edited right side lands on Accept; Review and Undo', { timeout: STEP * 2 }, async () => {
    const target = path.join(workspace, 'proposal-e2e.txt');
    await send(chat, 'write proposal-e2e.txt dave wrote this');
    const title = "proposal-e2e.txt (Dave's proposal)";
    const tab = page.locator('.tabs-container .tab', { hasText: title });
    await tab.waitFor({ timeout: 60_000 });
    const diff = page.locator('.monaco-diff-editor').first();
    await diff.waitFor({ timeout: 30_000 });
    // The card says where to look, and can open the diff again.
    await chat.locator('.item.permission .permission-review', { hasText: 'diff editor' }).waitFor({ timeout: 30_000 });
    assert.equal(await chat.getByRole('button', { name: 'Show diff', exact: true }).count(), 1);

    // Type into the right side (the proposal), at its end.
    const modified = diff.locator('.editor.modified .view-lines').first();
    await modified.waitFor({ timeout: 30_000 });
    await rightSideShows(page, 'dave wrote this');
    await modified.click();
    await page.keyboard.press('Control+End');
    await page.keyboard.type(', and the user edited it');
    await rightSideShows(page, 'the user edited it');
    const accept = page.locator('.editor-actions .action-label[aria-label^="Accept"]').first();
    await accept.waitFor({ timeout: 30_000 });
    assert.equal(await page.locator('.editor-actions .action-label[aria-label^="Reject"]').count(), 1);
    await screenshot(page, 'vscode-proposal.png');
    await accept.click();

    const content = await waitForFile(target, 60_000);
    assert.equal(content, 'dave wrote this, and the user edited it');
    await tab.waitFor({ state: 'detached', timeout: 30_000 });
    await chat.locator('.item.permission', { hasText: 'Allowed with your edits' }).waitFor({ timeout: 30_000 });

    // The turn's row: "1 file changed", Review opens its diff, Undo deletes the file it created.
    const row = chat.locator('.item.changes', { hasText: 'proposal-e2e.txt' }).last();
    await row.waitFor({ timeout: 30_000 });
    assert.equal((await row.locator('.changes-title').textContent())?.trim(), '1 file changed');
    await idle(chat);
    await row.getByRole('button', { name: 'Review', exact: true }).click();
    await page.locator('.tabs-container .tab', { hasText: "proposal-e2e.txt (Dave's change)" }).waitFor({ timeout: 30_000 });
    await screenshot(page, 'vscode-review.png');
    await row.getByRole('button', { name: 'Undo', exact: true }).click();
    const deadline = Date.now() + 30_000;
    while (existsSync(target) && Date.now() < deadline) await sleep(200);
    assert.equal(existsSync(target), false, 'Undo deletes the file the turn created');
    await row.locator('.changes-file.reverted').waitFor({ timeout: 30_000 });
    await screenshot(page, 'vscode-undo.png');
  });

  it('the selection goes with a prompt, and the model can ask the editor for it', { timeout: STEP * 2 }, async () => {
    // Open greet.py (Quick Open) and select its first two lines.
    await page.locator('.tabs-container .tab.active').first().click();
    await page.keyboard.press('Control+P');
    const quickOpen = page.locator('.quick-input-widget input');
    await quickOpen.waitFor({ timeout: 30_000 });
    await quickOpen.fill('greet.py');
    await page.locator('.quick-input-list .monaco-list-row', { hasText: 'greet.py' }).first().waitFor({ timeout: 30_000 });
    await page.keyboard.press('Enter');
    await page.locator('.tabs-container .tab.active', { hasText: 'greet.py' }).waitFor({ timeout: 30_000 });
    await page.locator('.editor-group-container.active .monaco-editor .view-lines').first().click();
    await page.keyboard.press('Control+Home');
    await page.keyboard.press('Shift+ArrowDown');
    await page.keyboard.press('Shift+ArrowDown');
    await page.locator('.statusbar', { hasText: 'selected' }).waitFor({ timeout: 30_000 });
    // The Dave view is still showing (a click on its icon would hide the side bar).
    if (!(await page.locator('.part.sidebar').isVisible())) await page.locator('.activitybar [aria-label^="Dave"]').first().click();
    chat = await chatFrame(page, 60_000);
    await messageBox(chat).waitFor({ state: 'visible', timeout: 30_000 });

    await ask(chat, 'hello ctx-e2e-marker');
    // The model's conversation (the CLI's transcript) has the editor's context before the prompt.
    const said = transcripts(path.join(home, '.claude'))
      .split('\n')
      .filter((line) => line.includes('ctx-e2e-marker') && line.includes('"type":"user"'))
      .join('\n');
    assert.match(said, /The user's active file in the editor is greet\.py \(python\), with lines 1-2 selected/);
    assert.match(said, /def greet\(name\):/);

    await send(chat, 'tool mcp__editor__getCurrentSelection {}');
    const answer = chat.locator('.item.assistant', { hasText: 'Tool said: greet.py, lines 1-2' });
    await answer.waitFor({ timeout: 60_000 });
    assert.match((await answer.textContent()) ?? '', /def greet\(name\):/);
    await idle(chat);
    await screenshot(page, 'vscode-context.png');
  });

  it('Ask Dave About Selection puts the selection into the message box as a chip that goes with the next message', { timeout: STEP }, async () => {
    // greet.py keeps lines 1-2 selected (the test before); the palette runs the command on it.
    await page.locator('.tabs-container .tab', { hasText: 'greet.py' }).first().click();
    await page.keyboard.press('F1');
    const palette = page.locator('.quick-input-widget input');
    await palette.waitFor({ timeout: 30_000 });
    await palette.fill('>Dave: Ask Dave About Selection');
    await page.locator('.quick-input-list .monaco-list-row', { hasText: 'Ask Dave About Selection' }).first().waitFor({ timeout: 30_000 });
    await page.keyboard.press('Enter');
    const chipLabel = chat.locator('#chips .chip-label', { hasText: 'greet.py:1-2' });
    await chipLabel.waitFor({ timeout: 30_000 });
    assert.equal(await messageBox(chat).inputValue(), '', 'nothing pasted into the box');
    await send(chat, 'hello chip-e2e-marker');
    const bubble = chat.locator('.item.user', { hasText: 'hello chip-e2e-marker' }).last();
    await bubble.locator('.user-context .chip', { hasText: 'greet.py:1-2' }).waitFor({ timeout: 30_000 });
    assert.doesNotMatch((await bubble.textContent()) ?? '', /def greet/);
    await chat.locator('.item.assistant', { hasText: 'You said: hello chip-e2e-marker' }).waitFor({ timeout: 60_000 });
    await idle(chat);
    assert.equal(await chat.locator('#chips .chip').count(), 0, 'the chip went with the message');
    const said = transcripts(path.join(home, '.claude'))
      .split('\n')
      .filter((line) => line.includes('chip-e2e-marker') && line.includes('"type":"user"'))
      .join('\n');
    assert.match(said, /greet\.py \(python\), with lines 1-2 selected/);
    await screenshot(page, 'vscode-chip.png');
  });

  it("a code block's Insert puts its code into the editor at the cursor", { timeout: STEP }, async () => {
    // greet.py is the active editor (the test before selected its first lines).
    // Two blocks: this test inserts the first, the next applies the second (it names its file).
    const blocks = "printf 'Here:\\n```python\\nINSERTED_BY_DAVE = 1\\n```\\n\\n```python title=applied-e2e.py\\nAPPLIED_BY_DAVE = 2\\n```\\n'";
    await send(chat, `tool Bash ${JSON.stringify({ command: blocks })}`);
    // Claude Code runs a read-only command like printf without asking; allow it if it asks.
    const block = chat.locator('.item.assistant .code-block', { hasText: 'INSERTED_BY_DAVE = 1' }).last();
    const allow = chat.locator('.item.permission button.allow').last();
    const until = Date.now() + 60_000;
    while ((await block.count()) === 0 && Date.now() < until) {
      if (await allow.isVisible()) await allow.click();
      await sleep(200);
    }
    await block.waitFor({ timeout: 5_000 });
    await idle(chat);
    assert.equal(await block.getByRole('button', { name: 'Copy', exact: true }).count(), 1);
    await block.getByRole('button', { name: 'Insert at cursor', exact: true }).click();
    const deadline = Date.now() + 30_000;
    let lines: string[] = [];
    while (Date.now() < deadline) {
      lines = await page.evaluate(() =>
        [...document.querySelectorAll('.editor-group-container.active .monaco-editor .view-line')].map((l) => (l.textContent ?? '').replace(/\u00a0/g, ' ')),
      );
      if (lines.some((l) => l.includes('INSERTED_BY_DAVE = 1'))) break;
      await sleep(200);
    }
    assert.ok(lines.some((l) => l.includes('INSERTED_BY_DAVE = 1')), `the editor shows ${JSON.stringify(lines)}`);
    await chat.locator('#status', { hasText: 'Inserted the code at the cursor.' }).waitFor({ timeout: 10_000 });
    await screenshot(page, 'vscode-code-block.png');
  });

  it("a code block's Apply opens its change in the diff editor; the edited right side lands on Accept", { timeout: STEP }, async () => {
    const target = path.join(workspace, 'applied-e2e.py');
    const block = chat.locator('.item.assistant .code-block', { hasText: 'APPLIED_BY_DAVE = 2' }).last();
    await block.getByRole('button', { name: 'Apply', exact: true }).click();
    await page.locator('.tabs-container .tab', { hasText: "applied-e2e.py (Apply Dave's code)" }).waitFor({ timeout: 30_000 });
    await chat.locator('#status', { hasText: 'Review the change to the new file applied-e2e.py in the diff editor' }).waitFor({ timeout: 10_000 });
    await rightSideShows(page, 'APPLIED_BY_DAVE = 2');
    assert.equal(existsSync(target), false, 'nothing is written before Accept');
    // Edit the right side: exactly what it holds then lands.
    const modified = page.locator('.monaco-diff-editor .editor.modified .view-lines').first();
    await modified.click();
    await page.keyboard.press('Control+End');
    await page.keyboard.type('EDITED_IN_DIFF = 3');
    await rightSideShows(page, 'EDITED_IN_DIFF = 3');
    await screenshot(page, 'vscode-apply.png');
    await page.locator('.editor-actions .action-label[aria-label^="Accept"]').first().click();
    assert.equal(await waitForFile(target, 30_000), 'APPLIED_BY_DAVE = 2\nEDITED_IN_DIFF = 3');
    await page.locator('.tabs-container .tab', { hasText: "(Apply Dave's code)" }).waitFor({ state: 'detached', timeout: 30_000 });
    await chat.locator('#status', { hasText: 'Applied the code to applied-e2e.py with your edits.' }).waitFor({ timeout: 10_000 });

    // Again, now that the file is open in an editor: it changes through that editor and is saved
    // (the whole file: it ended without a line break, and still does).
    await block.getByRole('button', { name: 'Apply', exact: true }).click();
    await chat.locator('#status', { hasText: 'Review the change to applied-e2e.py in the diff editor' }).waitFor({ timeout: 10_000 });
    await page.locator('.editor-actions .action-label[aria-label^="Accept"]').first().click();
    await chat.locator('#status', { hasText: 'Applied the code to applied-e2e.py.' }).waitFor({ timeout: 10_000 });
    const deadline = Date.now() + 10_000;
    while (readFileSync(target, 'utf8') !== 'APPLIED_BY_DAVE = 2' && Date.now() < deadline) await sleep(100);
    assert.equal(readFileSync(target, 'utf8'), 'APPLIED_BY_DAVE = 2');
    await screenshot(page, 'vscode-applied.png');
  });

  it('the model asks a question; clicking an option answers it', { timeout: STEP }, async () => {
    const question = {
      question: 'Which color?',
      header: 'Color',
      multiSelect: false,
      options: [
        { label: 'Blue', description: 'calm' },
        { label: 'Red', description: 'warm' },
      ],
    };
    await send(chat, `tool AskUserQuestion ${JSON.stringify({ questions: [question] })}`);
    const card = chat.locator('.item.permission.question-card').last();
    await card.waitFor({ timeout: 60_000 });
    await card.locator('legend', { hasText: 'Which color?' }).waitFor({ timeout: 30_000 });
    await screenshot(page, 'vscode-question.png');
    await card.getByRole('button', { name: 'Blue', exact: true }).click();
    await chat.locator('.item.assistant', { hasText: '"Which color?"="Blue"' }).waitFor({ timeout: 60_000 });
    await card.locator('.permission-outcome', { hasText: 'Answered' }).waitFor({ timeout: 30_000 });
    await idle(chat);
    await screenshot(page, 'vscode-question-answered.png');
  });
});
