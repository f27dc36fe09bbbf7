/**
 * TurnRunner: a turn from its prompt to its end. It adds the prompt's item,
 * gets the client (starting the server, with a status line meanwhile), sends
 * the query with the transcript the store decides on, feeds the client's
 * reports through the turn reducer (turnReducer.ts) and applies its effects
 * to the store and the view, learns the meter after it (serverSessions.ts),
 * and then runs the session's next queued prompt.
 */

import type { DaveClient } from '../protocol/daveClient';
import type { QueryContext } from '../protocol/editorTypes';
import { errorMessage } from '../protocol/errors';
import type { QueryOutcome } from '../protocol/query';
import type { ImageAttachment, TranscriptMessage } from '../protocol/types';
import type { TurnChanges } from './changes';
import type { PromptQueue } from './promptQueue';
import type { ProposalReview } from './review';
import { turnListener, type RunningTurns, type Turn } from './runningTurns';
import type { ServerSessions } from './serverSessions';
import { titleFrom, type Session, type SessionStore } from './sessionStore';
import { reduceTurn, startTurn, type TurnEffect, type TurnEvent } from './turnReducer';
import type { ViewUpdates } from './viewUpdates';

/** The status line while the extension installs its own server before it starts (issue 28). */
export const INSTALLING_STATUS = 'Installing the Dave server (first start, about a minute)…';

/** The part of the chat's host (ChatHost) that a turn needs. */
export interface TurnHost {
  getClient(onInstalling?: () => void): Promise<DaveClient>;
  log?(message: string): void;
  cwd?: string;
  proposals?: ProposalReview;
}

/** What a turn's parts are: the chat's stores and the modules that act on a turn's end. */
export interface TurnParts {
  store: SessionStore;
  turns: RunningTurns;
  queue: PromptQueue;
  view: ViewUpdates;
  changes: TurnChanges;
  serverSessions: ServerSessions;
}

export class TurnRunner {
  private turnCounter = 0;

  constructor(
    private readonly host: TurnHost,
    private readonly parts: TurnParts,
  ) {}

  /** Runs a prompt on a session now; resolves with the turn's outcome (undefined when the server did not start). */
  async run(
    session: Session,
    prompt: string,
    attachments: ImageAttachment[],
    context: QueryContext | undefined,
    contextLabels: readonly string[] = [],
  ): Promise<QueryOutcome | undefined> {
    const { store, turns, view } = this.parts;
    if (session.history.length === 0 && !session.resumed) session.title = titleFrom(prompt);
    const earlier = store.addPrompt(session, prompt);
    const images = attachments.length > 0 ? { images: attachments.length } : {};
    const labels = contextLabels.length > 0 ? { context: [...contextLabels] } : {};
    view.addItem(session, { id: store.itemId(), kind: 'user', text: prompt, ...images, ...labels });
    view.postSessions();

    turns.startSending(session.id);
    try {
      let client: DaveClient;
      try {
        view.setStatus(session, 'Starting the Dave server…');
        client = await this.host.getClient(() => view.setStatus(session, INSTALLING_STATUS));
      } catch (error) {
        view.setStatus(session, '');
        view.addItem(session, { id: store.itemId(), kind: 'error', message: errorMessage(error) });
        return undefined;
      }
      view.setStatus(session, 'Working…');
      const messages = store.messagesFor(session, client, earlier);
      return await this.runQuery(client, session, prompt, messages, { attachments, context });
    } finally {
      turns.doneSending(session.id);
      store.scheduleSave(0);
      this.runNext(session);
    }
  }

  /** The next queued prompt of a session, once its turn has ended. */
  private runNext(session: Session): void {
    const next = this.parts.queue.next(session.id);
    if (next === undefined) return;
    this.parts.view.postQueue(session);
    if (this.parts.store.get(session.id) === undefined) {
      next.done(undefined);
      return;
    }
    this.run(session, next.text, next.attachments, next.context, next.contextLabels).then(next.done, (error: unknown) => {
      this.host.log?.(`dave: a queued prompt failed: ${errorMessage(error)}`);
      next.done(undefined);
    });
  }

  private async runQuery(
    client: DaveClient,
    session: Session,
    prompt: string,
    messages: TranscriptMessage[],
    extra: { attachments: ImageAttachment[]; context: QueryContext | undefined },
  ): Promise<QueryOutcome> {
    const { store, turns, view } = this.parts;
    this.turnCounter += 1;
    const turn: Turn = { client, state: startTurn(`t${Date.now().toString(36)}-${this.turnCounter}`, this.host.cwd) };
    const apply = (event: TurnEvent): void => this.applyTurn(session, turn, event);
    const query = client.query(
      {
        sessionId: session.id,
        prompt,
        messages,
        ...(extra.context !== undefined ? { context: extra.context } : {}),
        ...(extra.attachments.length > 0 ? { attachments: extra.attachments } : {}),
        ...(session.model !== undefined && session.model !== '' && !session.resumed ? { model: session.model } : {}),
      },
      turnListener(apply, {
        onToken: () => store.scheduleSave(2000),
        onPermission: (permission) => this.host.proposals?.changed(permission),
      }),
    );
    turn.query = query;
    turns.start(session.id, turn);
    view.postBusy(session);

    const outcome = await query.outcome;
    turns.end(session.id);
    apply({ type: 'end', outcome, streamedText: query.text });
    if (outcome.kind === 'failed') store.transcriptLost(session);
    view.postBusy(session);
    if (outcome.kind === 'done') await this.parts.serverSessions.afterTurn(client, session, outcome);
    return outcome;
  }

  /** One reducer step; the state is stored before the effects run, as they may re-enter (a click on a new card). */
  private applyTurn(session: Session, turn: Turn, event: TurnEvent): void {
    const [state, effects] = reduceTurn(turn.state, event);
    turn.state = state;
    for (const effect of effects) this.applyEffect(session, effect, turn.client);
  }

  private applyEffect(session: Session, effect: TurnEffect, client: DaveClient): void {
    const { store, view } = this.parts;
    switch (effect.type) {
      case 'append':
        view.addItem(session, effect.item);
        break;
      case 'update':
        view.replaceItem(session, effect.item);
        break;
      case 'appendText':
        view.appendText(session, effect.itemId, effect.text);
        break;
      case 'status':
        view.setStatus(session, effect.text, effect.retry);
        break;
      case 'reply':
        store.addReply(session, effect.text);
        break;
      case 'log':
        this.host.log?.(`dave: ${effect.message} in session ${session.id}`);
        break;
      case 'changes':
        this.parts.changes.learnTurn(session, client, effect.itemId);
        break;
    }
  }
}
