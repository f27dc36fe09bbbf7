/**
 * `@` mentions in a prompt (issue 15): `@path#L5-10`, `@path#L5` and `@path`
 * become `context.mentions` ({path, startLine, endLine}, lines 1-based and
 * inclusive). Pure; the controller keeps only the paths that are files.
 */

import type { Mention } from '../protocol/editorTypes';

/** An `@` at the start or after white space or an opening bracket, then a path, then an optional `#L5` or `#L5-10`. */
const MENTION = /(?:^|[\s([{])@([^\s@#`'"<>()[\]{}]+)(?:#L(\d+)(?:-L?(\d+))?)?/g;

export function parseMentions(text: string): Mention[] {
  const found: Mention[] = [];
  const seen = new Set<string>();
  for (const match of text.matchAll(MENTION)) {
    // A sentence may end right after the path: `look at @src/a.py.`
    const path = (match[1] ?? '').replace(/[.,;:!?]+$/, '');
    if (path === '') continue;
    const start = match[2] === undefined ? undefined : Number(match[2]);
    const end = match[3] === undefined ? start : Number(match[3]);
    const mention: Mention = { path };
    if (start !== undefined && start >= 1) {
      mention.startLine = start;
      mention.endLine = end !== undefined && end >= start ? end : start;
    }
    const key = `${mention.path}#${mention.startLine ?? ''}-${mention.endLine ?? ''}`;
    if (seen.has(key)) continue;
    seen.add(key);
    found.push(mention);
  }
  return found;
}
