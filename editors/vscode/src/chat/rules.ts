/**
 * "Dave: Manage Permission Rules" without `vscode`: lists a session's "allow
 * always" rules (dave/listRules), lets the user pick one, removes it
 * (dave/removeRule) and says what happened. extension.ts supplies the
 * QuickPick; tests drive it against the real server.
 */

import type { DaveClient } from '../protocol/daveClient';
import { errorCode } from '../protocol/errors';
import type { PermissionRule } from '../protocol/sessionTypes';
import { ErrorCodes } from '../protocol/types';

/** A QuickPick row: the rule, its label and when it was added. */
export interface RulePick {
  label: string;
  description: string;
  detail: string;
  rule: string;
}

export interface RulesUi {
  /** Shows the rules; resolves with the one to remove, or undefined when dismissed. */
  pick(items: RulePick[]): Promise<RulePick | undefined>;
}

export const NO_RULES =
  'This Dave session has no permission rules. "Allow always" on a permission card adds one.';

export function rulePicks(rules: PermissionRule[]): RulePick[] {
  return rules.map((r) => ({
    label: r.rule,
    description: r.label,
    detail: `Added ${formatTime(r.createdAt)}. Pick it to remove it.`,
    rule: r.rule,
  }));
}

/** Runs the command once; resolves with the message to show, or undefined when the user dismissed it. */
export async function manageRules(
  client: DaveClient,
  sessionId: string | undefined,
  ui: RulesUi,
): Promise<string | undefined> {
  if (sessionId === undefined) return 'There is no Dave session yet, so there are no permission rules.';
  let rules: PermissionRule[] | undefined;
  try {
    rules = await client.listRules(sessionId);
  } catch (error) {
    // A session this window made but never sent has nothing on the server yet, so no rules.
    if (errorCode(error) === ErrorCodes.InvalidParams) return NO_RULES;
    throw error;
  }
  if (rules === undefined) {
    return 'This Dave server cannot list permission rules (it does not offer dave/listRules); update dave-lsp.';
  }
  if (rules.length === 0) return NO_RULES;
  const picked = await ui.pick(rulePicks(rules));
  if (picked === undefined) return undefined;
  const removed = await client.removeRule(sessionId, picked.rule);
  const what = picked.description !== '' ? `${picked.rule} (${picked.description})` : picked.rule;
  return removed
    ? `Removed the rule ${what}: Dave asks again before that.`
    : `The rule ${what} was already gone.`;
}

function formatTime(value: string | number): string {
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}
