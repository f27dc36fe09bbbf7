/**
 * ServerSessions: what the server knows of the sessions. On `ready`,
 * dave/listSessions adds the sessions this window does not know (filled from
 * dave/history when the server keeps their conversation); after a turn, the
 * context meter and what dave/listSessions says of the session's cost and
 * mode (an approved plan may have changed it).
 */

import type { DaveClient } from '../protocol/daveClient';
import { errorMessage } from '../protocol/errors';
import type { QueryOutcome } from '../protocol/query';
import type { ServerSessionInfo } from '../protocol/sessionTypes';
import { learnListed, meterAfterTurn } from './sessionSettings';
import type { Session, SessionStore } from './sessionStore';
import type { ViewUpdates } from './viewUpdates';

/** The part of the chat's host (ChatHost) that this needs. */
export interface ServerSessionsHost {
  getClient(): Promise<DaveClient>;
  log?(message: string): void;
}

export class ServerSessions {
  constructor(
    private readonly host: ServerSessionsHost,
    private readonly store: SessionStore,
    private readonly view: ViewUpdates,
  ) {}

  /** Adds sessions the server knows (dave/listSessions) that this window does not. */
  async refresh(): Promise<void> {
    let listed: ServerSessionInfo[] | undefined;
    try {
      listed = (await (await this.host.getClient()).listSessions())?.sessions;
    } catch (error) {
      this.host.log?.(`dave: listSessions failed: ${errorMessage(error)}`);
      return;
    }
    if (listed === undefined) return;
    const added = this.store.addListed(listed);
    for (const info of listed) {
      const session = this.store.get(info.sessionId);
      if (session !== undefined) this.learn(session, info);
    }
    for (const id of added) await this.showHistory(id);
    if (added.length > 0) this.view.postState();
    else {
      const active = this.store.active();
      if (active !== undefined) this.view.postMeter(active);
    }
  }

  /** The context meter after a turn, and the session's cost from dave/listSessions (else the turns' sum). */
  async afterTurn(client: DaveClient, session: Session, outcome: Extract<QueryOutcome, { kind: 'done' }>): Promise<void> {
    meterAfterTurn(session, outcome);
    try {
      const listed = (await client.listSessions())?.sessions.find((s) => s.sessionId === session.id);
      if (listed !== undefined) this.learn(session, listed);
    } catch (error) {
      this.host.log?.(`dave: listSessions failed: ${errorMessage(error)}`);
    }
    this.view.postMeter(session);
  }

  /** Fills a session the server listed with its conversation (dave/history), when the server keeps one. */
  private async showHistory(sessionId: string): Promise<void> {
    const session = this.store.get(sessionId);
    if (session === undefined) return;
    try {
      const found = await (await this.host.getClient()).history(sessionId);
      if (found?.available) this.store.fillFromHistory(session, found.entries);
    } catch (error) {
      this.host.log?.(`dave: history of ${sessionId} failed: ${errorMessage(error)}`);
    }
  }

  private learn(session: Session, listed: ServerSessionInfo): void {
    if (learnListed(session, listed)) this.view.postSettings(session);
  }
}
