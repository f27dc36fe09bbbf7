/**
 * Rewind and fork in a real VS Code (issue 27): two turns write notes.txt
 * ("one", then "two"); "Rewind to here" on the second message restores "one",
 * takes the message off the chat, shows the card with the restored file and
 * puts the message back in the box; the card's Review opens the diff of what
 * the rewind undid; "Fork from here" on the first message opens a session
 * holding that turn, which goes on, while the original stays in the session
 * list. Skips without the e2e tools, as vscode.e2e.test.ts does.
 */

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';

import type { Frame, Page } from 'playwright-core';

import { ask, e2eSkip, idle, messageBox, openChat, openDave, screenshot, send, type DaveWindow } from './codeServer';
import { sleep } from './helpers';

const STEP = 120_000;

async function fileSays(file: string, text: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let seen = '';
  while (Date.now() < deadline) {
    try {
      seen = readFileSync(file, 'utf8');
      if (seen === text) return;
    } catch {
      // Not there yet.
    }
    await sleep(200);
  }
  throw new Error(`${file} never said ${JSON.stringify(text)}; it said ${JSON.stringify(seen)}`);
}

describe('rewind and fork in a real VS Code (code-server + Chromium)', { skip: e2eSkip }, () => {
  let window: DaveWindow | undefined;
  let page: Page;
  let chat: Frame;
  let notes: string;
  const second = (): string =>
    `steps ${JSON.stringify([
      ['Read', { file_path: notes }],
      ['Write', { file_path: notes, content: 'two' }],
    ])}`;

  before(async () => {
    window = await openDave({
      name: 'e2e-rewind',
      folder: 'project',
      prepare: (workspace) => writeFileSync(path.join(workspace, 'README.md'), '# rewind\n'),
      finalScreenshot: 'vscode-rewind-final.png',
    });
    page = window.page;
    notes = path.join(window.workspace, 'notes.txt');
  }, { timeout: 240_000 });

  after(async () => {
    await window?.close();
  });

  it('two turns write notes.txt', { timeout: STEP }, async () => {
    chat = await openChat(page);
    for (const [prompt, content] of [
      ['write notes.txt one', 'one'],
      [second(), 'two'],
    ]) {
      await send(chat, prompt);
      const allow = chat.locator('.item.permission').last().getByRole('button', { name: 'Allow', exact: true });
      await allow.click({ timeout: 60_000 });
      await fileSays(notes, content, 60_000);
      await idle(chat);
    }
    await chat.locator('.item.changes').nth(1).waitFor({ timeout: 30_000 });
  });

  it('Rewind to here on the second message restores the file and takes the turn off the chat', { timeout: STEP }, async () => {
    await chat.locator('.item.user').nth(1).getByRole('button', { name: 'Rewind to here', exact: true }).click();
    const card = chat.locator('.item.rewind', { hasText: 'Rewound to before turn 2' });
    await card.waitFor({ timeout: 30_000 });
    await fileSays(notes, 'one', 10_000);
    assert.equal(await chat.locator('.item.user').count(), 1, 'the second message left the chat');
    assert.match((await card.textContent()) ?? '', /notes\.txt\s*restored/);
    assert.equal(await messageBox(chat).inputValue(), second(), 'the message is back in the box');
    await screenshot(page, 'vscode-rewind.png');

    // Review: what the rewind undid ("two", what turn 2 left) against the file now ("one").
    await card.getByRole('button', { name: 'Review notes.txt', exact: true }).click();
    const deadline = Date.now() + 30_000;
    let sides: string[][] = [];
    while (Date.now() < deadline) {
      sides = await page.evaluate(() =>
        ['original', 'modified'].map((side) =>
          [...document.querySelectorAll(`.monaco-diff-editor .editor.${side} .view-line`)].map((l) => l.textContent ?? ''),
        ),
      );
      if (sides[0].includes('two') && sides[1].includes('one')) break;
      await sleep(200);
    }
    assert.deepEqual(sides, [['two'], ['one']]);
  });

  it('Fork from here opens a session holding the first turn; the original stays', { timeout: STEP }, async () => {
    await send(chat, 'hello again');
    await chat.locator('.item.assistant', { hasText: 'You said: hello again' }).waitFor({ timeout: 60_000 });
    await idle(chat);
    await chat.locator('.item.user').first().getByRole('button', { name: 'Fork from here', exact: true }).click();
    await chat.locator('.item.notice', { hasText: 'Forked from "write notes.txt one" at turn 1' }).waitFor({ timeout: 30_000 });
    assert.deepEqual(await chat.locator('.item.user .body').allTextContents(), ['write notes.txt one']);
    const options = await chat.locator('#session-select option').allTextContents();
    assert.deepEqual(options, ['write notes.txt one', 'write notes.txt one (fork)'], JSON.stringify(options));
    await ask(chat, 'hello in the fork');
    assert.equal(await chat.locator('.item.user').count(), 2);
    assert.equal(readFileSync(notes, 'utf8'), 'one', 'a fork changes no file');
    await screenshot(page, 'vscode-fork.png');
  });
});
