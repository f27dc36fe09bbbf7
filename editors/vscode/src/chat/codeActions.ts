/**
 * What the chat's code blocks and tool rows do in the editor (issue 18): Copy
 * puts a block's code on the clipboard, Insert at cursor puts it into the last
 * active editor, Apply opens it as a reviewed edit of a file (applyCode.ts), and a file tool's row ("Write b.txt (11 bytes)") opens its
 * file. The host does the VS Code part; this words the outcome for the status
 * line.
 */

import * as path from 'node:path';

import { errorMessage } from '../protocol/errors';
import type { FromWebview } from '../shared/messages';

export interface CodeActionHost {
  cwd?: string;
  copyText?(text: string): Promise<void>;
  /** A problem to show, or undefined when it was inserted. */
  insertText?(text: string): Promise<string | undefined>;
  openFile?(file: string): Promise<void>;
  /** A code block's Apply: opens its reviewed edit; the line for the status line. */
  applyCode?(code: string, info: string | undefined): Promise<string>;
}

export type CodeAction = Extract<FromWebview, { type: 'copyCode' | 'insertCode' | 'applyCode' | 'openFile' }>;

/** Runs a code block's or tool row's action; the line for the status line, if any. */
export async function runCodeAction(host: CodeActionHost, action: CodeAction): Promise<string | undefined> {
  switch (action.type) {
    case 'copyCode':
      try {
        if (host.copyText === undefined) return 'Could not copy the code: there is no clipboard here';
        await host.copyText(action.code);
        return 'Copied the code to the clipboard.';
      } catch (error) {
        return `Could not copy the code: ${errorMessage(error)}`;
      }
    case 'insertCode': {
      let problem: string | undefined;
      try {
        problem = host.insertText === undefined ? 'there is no editor here' : await host.insertText(action.code);
      } catch (error) {
        problem = errorMessage(error);
      }
      return problem === undefined ? 'Inserted the code at the cursor.' : `Could not insert the code: ${problem}`;
    }
    case 'applyCode':
      if (host.applyCode === undefined) return 'Could not apply the code: there is no editor here';
      return host.applyCode(action.code, action.info);
    case 'openFile': {
      const file = action.path;
      const absolute = path.isAbsolute(file) || host.cwd === undefined ? file : path.join(host.cwd, file);
      try {
        await host.openFile?.(absolute);
        return undefined;
      } catch (error) {
        return `Could not open ${file}: ${errorMessage(error)}`;
      }
    }
  }
}
