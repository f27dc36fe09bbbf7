/**
 * DaveClient against the real dave-lsp server over stdio, with the shipped
 * fake model behind the real Claude Code CLI.
 */

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';

import type { PendingPermission, QueryOutcome } from '../src/protocol/daveClient';
import { ErrorCodes, Methods, type ProgressValue } from '../src/protocol/types';
import { newSessionId, serverForSuite } from './helpers';

const T = { timeout: 120_000 };

function done(outcome: QueryOutcome): Extract<QueryOutcome, { kind: 'done' }> {
  assert.equal(outcome.kind, 'done', `expected a result, got ${JSON.stringify(outcome)}`);
  return outcome as Extract<QueryOutcome, { kind: 'done' }>;
}

describe('DaveClient with the real server', () => {
  const suite = serverForSuite();

  it('advertises protocol version 1 and its methods', () => {
    const caps = suite.dave.server.capabilities;
    assert.ok(caps, 'initialize result has capabilities.experimental.dave');
    assert.equal(caps.version, 1);
    for (const method of [Methods.query, Methods.permission, Methods.deleteSession]) {
      assert.ok(caps.methods?.includes(method), `methods lists ${method}: ${JSON.stringify(caps.methods)}`);
    }
  });

  it('streams tokens whose concatenation is the result text', T, async () => {
    const tokens: string[] = [];
    const progress: ProgressValue[] = [];
    const query = suite.dave.server.client.query(
      { sessionId: newSessionId('stream'), prompt: 'hello from VS Code' },
      { onToken: (t) => tokens.push(t), onProgress: (v) => progress.push(v) },
    );
    const { result } = done(await query.outcome);
    assert.equal(result.text, 'You said: hello from VS Code');
    assert.equal(tokens.join(''), result.text);
    assert.equal(query.text, result.text);
    assert.ok(tokens.length > 1, `streamed in more than one piece: ${JSON.stringify(tokens)}`);
    assert.equal(progress[0]?.kind, 'begin');
    assert.equal(progress.at(-1)?.kind, 'end', 'end arrives before the response');
    assert.equal(progress.filter((v) => v.kind === 'end').length, 1);
  });

  it('keeps a session’s history across queries', T, async () => {
    const sessionId = newSessionId('recall');
    const client = suite.dave.server.client;
    done(await client.query({ sessionId, prompt: 'first words' }).outcome);
    const { result } = done(await client.query({ sessionId, prompt: 'recall' }).outcome);
    assert.match(result.text, /^Seen: /);
    assert.match(result.text, /first words/);
  });

  it('sends the transcript on a session’s first query', T, async () => {
    const client = suite.dave.server.client;
    const sessionId = newSessionId('transcript');
    const first = done(
      await client.query({
        sessionId,
        prompt: 'hello again',
        messages: [
          { role: 'user', content: 'remembered from before the restart' },
          { role: 'assistant', content: 'You said: remembered from before the restart' },
        ],
      }).outcome,
    );
    assert.match(first.result.text, /hello again/);
    // The model saw the transcript as part of the session's first message.
    const { result } = done(await client.query({ sessionId, prompt: 'recall' }).outcome);
    assert.match(result.text, /remembered from before the restart/);
  });

  it('a permission answered allow runs the tool and writes the file', T, async () => {
    const requests: PendingPermission[] = [];
    const resolved: Array<{ decision: string; by: string }> = [];
    const client = suite.dave.server.client;
    const query = client.query(
      { sessionId: newSessionId('allow'), prompt: 'write allowed.txt hello-allowed' },
      {
        onPermissionRequest: (p) => {
          requests.push(p);
          void client.answerPermission(p.requestId, 'allow');
        },
        onPermissionResolved: (_p, r) => resolved.push({ decision: r.decision, by: r.by }),
      },
    );
    const { result } = done(await query.outcome);
    assert.equal(requests.length, 1);
    assert.equal(requests[0]!.toolName, 'Write');
    assert.ok(requests[0]!.message.length > 0);
    assert.deepEqual(resolved, [{ decision: 'allow', by: 'user' }]);
    const file = path.join(suite.dave.workspace, 'allowed.txt');
    assert.ok(existsSync(file), 'the file was written');
    assert.equal(readFileSync(file, 'utf8'), 'hello-allowed');
    assert.ok(result.toolResults.some((t) => t.toolName === 'Write' && !t.isError), JSON.stringify(result.toolResults));
    assert.match(result.text, /Tool said/);
  });

  it('a permission answered deny does not write the file, and answers only once', T, async () => {
    const client = suite.dave.server.client;
    const answers: boolean[] = [];
    let requestId = '';
    const resolved: string[] = [];
    const query = client.query(
      { sessionId: newSessionId('deny'), prompt: 'write denied.txt nope' },
      {
        onPermissionRequest: (p) => {
          requestId = p.requestId;
          void (async () => {
            answers.push(await client.answerPermission(p.requestId, 'deny', 'not in this folder'));
            // A second click on the same card sends nothing.
            answers.push(await client.answerPermission(p.requestId, 'allow'));
          })();
        },
        onPermissionResolved: (_p, r) => resolved.push(r.decision),
      },
    );
    const outcome = await query.outcome;
    assert.notEqual(outcome.kind, 'cancelled');
    assert.deepEqual(answers, [true, false]);
    assert.deepEqual(resolved, ['deny']);
    assert.equal(existsSync(path.join(suite.dave.workspace, 'denied.txt')), false, 'the file was not written');
    // The server itself refuses an answered request id.
    await assert.rejects(
      suite.dave.server.connection.sendRequest(Methods.permission, { requestId, decision: 'allow' }),
      (error: { code?: number; message?: string }) => error.code === ErrorCodes.InvalidParams,
    );
  });

  it('cancel gives RequestCancelled and the session answers again', T, async () => {
    const client = suite.dave.server.client;
    const sessionId = newSessionId('cancel');
    let tokens = 0;
    const query = client.query(
      { sessionId, prompt: 'slow 400 50' },
      {
        onToken: () => {
          tokens += 1;
          if (tokens === 2) query.cancel();
        },
      },
    );
    const started = Date.now();
    const outcome = await query.outcome;
    assert.equal(outcome.kind, 'cancelled', JSON.stringify(outcome));
    assert.equal((outcome as { code: number }).code, ErrorCodes.RequestCancelled);
    assert.ok(Date.now() - started < 15_000, 'cancel ends the turn well before 400 slow tokens');
    assert.equal(client.runningQueries(sessionId).length, 0);

    const { result } = done(await client.query({ sessionId, prompt: 'still there?' }).outcome);
    assert.equal(result.text, 'You said: still there?');
  });

  it('cancelSession cancels a query waiting on a permission and denies it', T, async () => {
    const client = suite.dave.server.client;
    const sessionId = newSessionId('cancel-permission');
    const resolved: Array<{ decision: string; by: string }> = [];
    const query = client.query(
      { sessionId, prompt: 'write never.txt nothing' },
      {
        onPermissionRequest: () => client.cancelSession(sessionId),
        onPermissionResolved: (_p, r) => resolved.push({ decision: r.decision, by: r.by }),
      },
    );
    const outcome = await query.outcome;
    assert.equal(outcome.kind, 'cancelled', JSON.stringify(outcome));
    assert.equal(resolved.length, 1);
    assert.equal(resolved[0]!.decision, 'deny');
    assert.equal(existsSync(path.join(suite.dave.workspace, 'never.txt')), false);
    assert.equal(client.pendingPermissions(sessionId).length, 0);
  });

  it('an API error fails the query with RequestFailed and a message', T, async () => {
    const outcome = await suite.dave.server.client.query({
      sessionId: newSessionId('error'),
      prompt: 'error 400 the fake model says no',
    }).outcome;
    assert.equal(outcome.kind, 'failed', JSON.stringify(outcome));
    const failed = outcome as Extract<QueryOutcome, { kind: 'failed' }>;
    assert.equal(failed.code, ErrorCodes.RequestFailed);
    assert.ok(failed.message.length > 0);
    assert.ok(!failed.message.includes('\n'), 'one line');
  });

  it('deleteSession deletes a session once', T, async () => {
    const client = suite.dave.server.client;
    const sessionId = newSessionId('delete');
    done(await client.query({ sessionId, prompt: 'something to forget' }).outcome);
    assert.equal(await client.deleteSession(sessionId), true);
    assert.equal(await client.deleteSession(sessionId), false);
    assert.equal(await client.deleteSession(newSessionId('never-existed')), false);
  });

  it('deleteSession ends a running query as cancelled', T, async () => {
    const client = suite.dave.server.client;
    const sessionId = newSessionId('delete-running');
    let deleted: Promise<boolean> | undefined;
    const query = client.query(
      { sessionId, prompt: 'slow 400 50' },
      {
        onToken: () => {
          deleted ??= client.deleteSession(sessionId);
        },
      },
    );
    const outcome = await query.outcome;
    assert.equal(outcome.kind, 'cancelled', JSON.stringify(outcome));
    assert.equal(await deleted, true);
  });
});
