/**
 * A session's settings and meter (issue 16), without the view: the model and
 * permission mode applied to the server (dave/setModel, dave/setPermissionMode,
 * or dave/newSession for a session the server does not know yet), the context
 * meter after a turn, and what dave/listSessions says of a session. The
 * controller posts what changed.
 */

import type { DaveClient } from '../protocol/daveClient';
import { errorCode, errorMessage } from '../protocol/errors';
import type { QueryOutcome } from '../protocol/query';
import type { ServerSessionInfo } from '../protocol/sessionTypes';
import { ErrorCodes, Methods, type PermissionMode } from '../protocol/types';
import { PERMISSION_MODES, type Meter } from '../shared/messages';
import type { Session } from './sessionStore';

/**
 * Applies a setting to the server; the problem in a line, or undefined when it
 * took. A session the server does not know yet is created with the settings.
 */
export async function configureSession(
  getClient: () => Promise<DaveClient>,
  session: Session,
  change: (client: DaveClient) => Promise<void>,
  settings: { model?: string; permissionMode?: PermissionMode },
): Promise<string | undefined> {
  const problem = (error: unknown): string => `The server could not change the session: ${errorMessage(error)}`;
  let client: DaveClient;
  try {
    client = await getClient();
  } catch (error) {
    return problem(error);
  }
  try {
    await change(client);
    return undefined;
  } catch (error) {
    if (errorCode(error) !== ErrorCodes.InvalidParams || !client.supports(Methods.newSession)) return problem(error);
  }
  const model = settings.model ?? session.model;
  const permissionMode = settings.permissionMode ?? session.permissionMode;
  try {
    await client.newSession({
      sessionId: session.id,
      ...(model !== undefined && model !== '' ? { model } : {}),
      ...(permissionMode !== undefined ? { permissionMode } : {}),
    });
    return undefined;
  } catch (again) {
    return problem(again);
  }
}

/** The context meter from a turn's usage, and the cost as the sum of this window's turns. */
export function meterAfterTurn(session: Session, outcome: Extract<QueryOutcome, { kind: 'done' }>): Meter {
  const usage = outcome.result.usage;
  const meter: Meter = { ...(session.meter ?? {}) };
  if (typeof usage?.contextTokens === 'number') meter.contextTokens = usage.contextTokens;
  if (typeof usage?.contextWindow === 'number') meter.contextWindow = usage.contextWindow;
  if (typeof outcome.result.costUsd === 'number') {
    session.turnsCost = (session.turnsCost ?? meter.costUsd ?? 0) + outcome.result.costUsd;
    meter.costUsd = session.turnsCost;
  }
  session.meter = meter;
  return meter;
}

/**
 * What dave/listSessions says of a session: its cost and its mode (an approved
 * plan may have changed it). True when the mode changed, for the pickers.
 */
export function learnListed(session: Session, listed: ServerSessionInfo): boolean {
  if (typeof listed.costUsd === 'number') {
    session.meter = { ...(session.meter ?? {}), costUsd: listed.costUsd };
    session.turnsCost = listed.costUsd;
  }
  const mode = listed.permissionMode as PermissionMode | undefined;
  if (mode === undefined || !PERMISSION_MODES.includes(mode) || mode === session.permissionMode) return false;
  session.permissionMode = mode;
  return true;
}
