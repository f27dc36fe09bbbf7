/**
 * DaveClient against the real dave-lsp server over stdio, with the shipped
 * fake model behind the real Claude Code CLI.
 */

import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';

import type { DaveClient } from '../src/protocol/daveClient';
import type { PendingPermission } from '../src/protocol/permissions';
import type { ProgressValue } from '../src/protocol/progressTypes';
import type { QueryListener, QueryOutcome } from '../src/protocol/query';
import { ErrorCodes, Methods, type PermissionDecision } from '../src/protocol/types';
import { newSessionId, serverForSuite } from './helpers';

const T = { timeout: 120_000 };

function done(outcome: QueryOutcome): Extract<QueryOutcome, { kind: 'done' }> {
  assert.equal(outcome.kind, 'done', `expected a result, got ${JSON.stringify(outcome)}`);
  return outcome;
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
    assert.equal(requests[0].toolName, 'Write');
    assert.ok(requests[0].message.length > 0);
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
    assert.equal(resolved[0].decision, 'deny');
    assert.equal(existsSync(path.join(suite.dave.workspace, 'never.txt')), false);
    assert.equal(client.pendingPermissions(sessionId).length, 0);
  });

  it('an API error fails the query with RequestFailed and a message', T, async () => {
    const outcome = await suite.dave.server.client.query({
      sessionId: newSessionId('error'),
      prompt: 'error 400 the fake model says no',
    }).outcome;
    assert.equal(outcome.kind, 'failed', JSON.stringify(outcome));
    const failed = outcome;
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

describe('"allow always" rules with the real server', () => {
  const suite = serverForSuite();
  const bash = (command: string): string => `tool Bash ${JSON.stringify({ command })}`;

  /** A listener that answers every permission request with `answer` and records what came. */
  function recorder(client: DaveClient, answer: PermissionDecision) {
    const seen = {
      requests: [] as PendingPermission[],
      resolved: [] as Array<[string, string, string | undefined]>,
      toolUses: [] as Array<string | undefined>,
    };
    const listener: QueryListener = {
      onPermissionRequest: (p) => {
        seen.requests.push(p);
        void client.answerPermission(p.requestId, answer);
      },
      onPermissionResolved: (_p, r) => seen.resolved.push([r.decision, r.by, r.rule]),
      onToolUse: (r) => seen.toolUses.push(r.message),
    };
    return { seen, listener };
  }

  it('advertises dave/listRules and dave/removeRule', () => {
    const methods = suite.dave.server.capabilities?.methods ?? [];
    for (const method of [Methods.listRules, Methods.removeRule]) {
      assert.ok(methods.includes(method), `methods lists ${method}: ${JSON.stringify(methods)}`);
    }
  });

  it('allow always adds a rule for that exact command, which is listed, used and removable', T, async () => {
    const client = suite.dave.server.client;
    const sessionId = newSessionId('rules');
    const one = path.join(suite.dave.workspace, 'one.txt');
    const two = path.join(suite.dave.workspace, 'two.txt');
    const rule = 'Bash(rm -f one.txt)';

    // The request says what "allow always" would add before it is chosen.
    writeFileSync(one, 'x');
    const first = recorder(client, 'allowAlways');
    await client.query({ sessionId, prompt: bash('rm -f one.txt') }, first.listener).outcome;
    assert.deepEqual(first.seen.requests.map((p) => p.allowAlways), [{ rule, label: 'this exact command' }]);
    assert.deepEqual(first.seen.resolved, [['allow', 'user', rule]], 'the answer reports the rule it added');
    assert.deepEqual(first.seen.toolUses, ['Bash rm -f one.txt'], 'toolUse carries the server’s description');
    assert.equal(existsSync(one), false, 'the command ran');
    for (const settings of ['settings.json', 'settings.local.json']) {
      assert.equal(existsSync(path.join(suite.dave.workspace, '.claude', settings)), false, `no .claude/${settings} was written`);
    }

    // The same command again runs by the rule, without asking.
    writeFileSync(one, 'x');
    const again = recorder(client, 'deny');
    await client.query({ sessionId, prompt: bash('rm -f one.txt') }, again.listener).outcome;
    assert.deepEqual(again.seen.requests, [], 'no question');
    assert.deepEqual(again.seen.resolved, [['allow', 'rule', rule]]);
    assert.equal(existsSync(one), false, 'the command ran again');

    // A different command asks again: the rule is not the whole Bash tool.
    writeFileSync(two, 'x');
    const other = recorder(client, 'deny');
    await client.query({ sessionId, prompt: bash('rm -f two.txt') }, other.listener).outcome;
    assert.deepEqual(other.seen.requests.map((p) => p.allowAlways?.rule), ['Bash(rm -f two.txt)']);
    assert.deepEqual(other.seen.resolved, [['deny', 'user', undefined]]);
    assert.equal(existsSync(two), true, 'the denied command did not run');

    const rules = await client.listRules(sessionId);
    assert.deepEqual(rules?.map((r) => [r.rule, r.label]), [[rule, 'this exact command']]);
    assert.ok(!Number.isNaN(new Date(rules[0].createdAt).getTime()), `createdAt is a time: ${rules[0].createdAt}`);
    assert.equal(await client.removeRule(sessionId, rule), true);
    assert.equal(await client.removeRule(sessionId, rule), false, 'removed once');
    assert.deepEqual(await client.listRules(sessionId), []);

    // Without the rule the command asks again.
    writeFileSync(one, 'x');
    const removed = recorder(client, 'deny');
    await client.query({ sessionId, prompt: bash('rm -f one.txt') }, removed.listener).outcome;
    assert.equal(removed.seen.requests.length, 1);
    assert.equal(existsSync(one), true);
  });

  it('a Write offers file edits in the session’s folder', T, async () => {
    const client = suite.dave.server.client;
    const { seen, listener } = recorder(client, 'deny');
    await client.query({ sessionId: newSessionId('rules-write'), prompt: 'write offered.txt no' }, listener).outcome;
    const offer = seen.requests[0]?.allowAlways;
    assert.equal(offer?.label, 'all file edits in this session\'s folder');
    assert.match(offer?.rule ?? '', /^Edit\(\/.+\/\*\*\)$/);
    assert.ok(offer.rule.includes(path.basename(suite.dave.workspace)), offer.rule);
  });

  it('listRules of a session the server does not know is InvalidParams', T, async () => {
    await assert.rejects(
      suite.dave.server.client.listRules(newSessionId('never-seen')),
      (error: { code?: number }) => error.code === ErrorCodes.InvalidParams,
    );
  });
});
