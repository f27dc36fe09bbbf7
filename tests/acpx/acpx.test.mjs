// acpx (npm, a third-party headless ACP client, pinned in package.json) drives
// `dave-lsp acp` (the real agent, the bundled Claude Code CLI, the shipped fake model)
// as its users script it: `exec` with --approve-all and --deny-all, a question from the
// model, Bash in acpx's terminal, `sessions new` and several prompts through acpx's
// queue owner, and a prompt after that owner has gone (acpx restarts the agent and
// resumes the session). Each run's exit code and `--format json` stream (raw ACP
// JSON-RPC, one message a line) are checked. acpx needs Node >= 22.13: run.sh runs this
// file on the registry's Node 24.
// Run: `bash tests/acpx/run.sh`.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "../..");
const python = process.env.DAVE_LSP_PYTHON || join(repo, ".venv/bin/python");
const acpxCli = join(here, "node_modules/acpx/dist/cli.js");
const acpxVersion = JSON.parse(readFileSync(join(here, "node_modules/acpx/package.json"))).version;

const work = mkdtempSync(join(tmpdir(), "dave-acpx-"));
const home = join(work, "home");
const project = join(work, "project");
const state = join(work, "state");
mkdirSync(home);
mkdirSync(project);

let fake;
let agent;

before(async () => {
  fake = spawn(python, ["-m", "dave_lsp.testing"], { stdio: ["ignore", "ignore", "pipe"] });
  const url = await new Promise((ok, fail) => {
    let seen = "";
    fake.stderr.on("data", (chunk) => {
      seen += chunk;
      const found = /listening on (\S+)/.exec(seen);
      if (found) ok(found[1]);
    });
    fake.on("exit", (code) => fail(new Error(`fake model exited ${code}: ${seen}`)));
  });
  const env = {
    ANTHROPIC_BASE_URL: url,
    ANTHROPIC_API_KEY: "sk-ant-fake-test-key-0123456789",
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
    CLAUDE_CODE_MAX_RETRIES: "0",
    HOME: home,
  };
  // acpx splits --agent on spaces: the temporary paths have none.
  agent = [python, "-m", "dave_lsp", "acp", `--state-dir=${state}`, "--prewarm=0"]
    .concat(Object.entries(env).map(([key, value]) => `--env=${key}=${value}`))
    .join(" ");
});

after(() => {
  fake?.kill("SIGTERM");
  rmSync(work, { recursive: true, force: true });
});

/** Run acpx with the agent, in the project; its exit code, JSON lines and stderr. */
function acpx(args, { timeoutMs = 60_000 } = {}) {
  const argv = [acpxCli, "--cwd", project, "--format", "json", "--timeout", "60", "--agent", agent];
  const child = spawn(process.execPath, argv.concat(args), {
    cwd: project,
    env: { ...process.env, HOME: home },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout.on("data", (chunk) => (out += chunk));
  child.stderr.on("data", (chunk) => (err += chunk));
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => {
      child.kill("SIGTERM");
      fail(new Error(`acpx ${args.join(" ")} ran over ${timeoutMs} ms\n${out}\n${err}`));
    }, timeoutMs);
    child.on("close", (code) => {
      clearTimeout(timer);
      // --format json is one JSON document a line, nothing else on stdout.
      const messages = [];
      for (const line of out.split("\n").filter((text) => text.trim())) {
        try {
          messages.push(JSON.parse(line));
        } catch {
          fail(new Error(`not JSON on acpx's stdout: ${line}`));
          return;
        }
      }
      // acpx reports what it could not use (a malformed message, a model) on stderr.
      if (/warning|error/i.test(err)) {
        fail(new Error(`acpx ${args.join(" ")} complained:\n${err}`));
        return;
      }
      ok({ code, messages, stderr: err });
    });
  });
}

const updates = (messages) =>
  messages.filter((m) => m.method === "session/update").map((m) => m.params.update);
const answerText = (messages) =>
  updates(messages)
    .filter((u) => u.sessionUpdate === "agent_message_chunk")
    .map((u) => u.content.text)
    .join("");
const requests = (messages, method) => messages.filter((m) => m.method === method);
// acpx's stream does not say which side sent a message, and both sides number their
// requests from 0: an answer is the next response to that id that has the field asked for.
const result = (messages, request, field) =>
  messages
    .slice(messages.indexOf(request) + 1)
    .find((m) => m.id === request.id && !m.method && (m.error || (m.result && field in m.result)));
const promptResult = (messages) =>
  result(messages, requests(messages, "session/prompt").at(-1), "stopReason");

/** The dave-lsp agents still running for this test (their command names its state dir). */
function agentsAlive() {
  return readdirSync("/proc")
    .filter((pid) => /^\d+$/.test(pid))
    .filter((pid) => {
      try {
        const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8");
        return cmd.includes("dave_lsp") && cmd.includes(state);
      } catch {
        return false;
      }
    });
}

async function until(check, what, ms = 20_000) {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((ok) => setTimeout(ok, 200));
  }
}

test(`acpx ${acpxVersion}: exec --approve-all writes through the client's fs and exits 0`, async () => {
  const input = JSON.stringify({ file_path: "approved.txt", content: "approved\n" });
  const run = await acpx(["--approve-all", "exec", `tool mcp__acp__Write ${input}`]);
  assert.equal(run.code, 0, run.stderr);
  const [init] = requests(run.messages, "initialize");
  assert.equal(result(run.messages, init, "agentInfo").result.agentInfo.name, "dave-lsp");
  const [write] = requests(run.messages, "fs/write_text_file");
  assert.equal(write.params.path, join(project, "approved.txt"));
  assert.equal(readFileSync(join(project, "approved.txt"), "utf8"), "approved\n");
  const done = updates(run.messages).filter((u) => u.sessionUpdate === "tool_call_update" && u.status);
  assert.equal(done.at(-1).status, "completed");
  assert.equal(promptResult(run.messages).result.stopReason, "end_turn");
});

test("exec --approve-all: Bash runs in acpx's terminal and its output reaches the model", async () => {
  const input = JSON.stringify({ command: "echo from-acpx-terminal" });
  const run = await acpx(["--approve-all", "exec", `tool mcp__acp__Bash ${input}`]);
  assert.equal(run.code, 0, run.stderr);
  const [created] = requests(run.messages, "terminal/create");
  assert.deepEqual(
    [created.params.command, created.params.args],
    ["bash", ["-c", "echo from-acpx-terminal"]],
  );
  assert.equal(created.params.cwd, project);
  const { terminalId } = result(run.messages, created, "terminalId").result;
  const released = requests(run.messages, "terminal/release").map((m) => m.params.terminalId);
  assert.deepEqual(released, [terminalId]);
  const shown = updates(run.messages).filter((u) => u.sessionUpdate === "tool_call_update");
  const terminals = shown.flatMap((u) => u.content ?? []).filter((c) => c.type === "terminal");
  assert.ok(terminals.some((c) => c.terminalId === terminalId));
  assert.equal(answerText(run.messages), "Tool said: from-acpx-terminal");
});

test("exec --deny-all: the write is rejected, nothing written, exit 5", async () => {
  const input = JSON.stringify({ file_path: "denied.txt", content: "no\n" });
  const run = await acpx(["--deny-all", "exec", `tool mcp__acp__Write ${input}`]);
  assert.equal(run.code, 5, run.stderr);
  const [asked] = requests(run.messages, "session/request_permission");
  assert.deepEqual(
    asked.params.options.map((o) => [o.optionId, o.kind]),
    [
      ["allow_once", "allow_once"],
      ["allow_always", "allow_always"],
      ["reject_once", "reject_once"],
    ],
  );
  assert.equal(result(run.messages, asked, "outcome").result.outcome.optionId, "reject_once");
  assert.equal(existsSync(join(project, "denied.txt")), false);
  assert.match(answerText(run.messages), /rejected/);
  assert.equal(promptResult(run.messages).result.stopReason, "end_turn");
});

test("exec --approve-all: the model's question is answered with the first choice", async () => {
  const questions = [
    {
      question: "Which colour?",
      header: "Colour",
      multiSelect: false,
      options: [
        { label: "Red", description: "warm" },
        { label: "Blue", description: "cool" },
      ],
    },
  ];
  const run = await acpx(["--approve-all", "exec", `tool AskUserQuestion ${JSON.stringify({ questions })}`]);
  assert.equal(run.code, 0, run.stderr);
  const [asked] = requests(run.messages, "session/request_permission");
  assert.equal(asked.params.toolCall.title, "Which colour?");
  assert.equal(result(run.messages, asked, "outcome").result.outcome.optionId, "answer:Red");
  assert.match(answerText(run.messages), /"Which colour\?"="Red"/);
});

let sessionId;

test("sessions new, then prompts through acpx's queue owner keep one session", async () => {
  const made = await acpx(["--ttl", "2", "sessions", "new"]);
  assert.equal(made.code, 0, made.stderr);
  assert.equal(made.messages.at(-1).action, "session_ensured");
  assert.equal(made.messages.at(-1).created, true);
  sessionId = made.messages.at(-1).acpxSessionId;
  assert.ok(sessionId);

  const first = await acpx(["--ttl", "2", "prompt", "first words"]);
  assert.equal(first.code, 0, first.stderr);
  assert.equal(answerText(first.messages), "You said: first words");
  const info = updates(first.messages).find((u) => u.sessionUpdate === "session_info_update");
  assert.equal(info.title, "first words");
  // The follow-ups go to the agent acpx already runs: no second initialize.
  for (const text of ["second words", "recall"]) {
    const next = await acpx(["--ttl", "2", "prompt", text]);
    assert.equal(next.code, 0, next.stderr);
    assert.equal(requests(next.messages, "initialize").length, 0);
    assert.equal(requests(next.messages, "session/prompt")[0].params.sessionId, sessionId);
    assert.equal(promptResult(next.messages).result.stopReason, "end_turn");
    if (text === "recall") assert.equal(answerText(next.messages), "Seen: first words | second words");
  }
});

test("after the agent has gone, acpx restarts it and session/resume brings the session back", async () => {
  // acpx's queue owner stops its agent after --ttl idle seconds.
  await until(async () => (await acpx(["status"])).messages.at(-1)?.status === "idle", "an idle session");
  await until(() => agentsAlive().length === 0, "the agent to exit");
  const run = await acpx(["--ttl", "1", "prompt", "recall"]);
  assert.equal(run.code, 0, run.stderr);
  const [resumed] = requests(run.messages, "session/resume");
  assert.equal(resumed.params.sessionId, sessionId);
  const answer = result(run.messages, resumed, "configOptions").result;
  assert.deepEqual(
    answer.configOptions.map((o) => o.id),
    ["model", "mode"],
  );
  assert.equal(answerText(run.messages), "Seen: first words | second words | recall");
  // Nothing left running once acpx's owner has timed out, the owner included.
  await until(() => agentsAlive().length === 0, "no agent left", 20_000);
  await until(async () => (await acpx(["status"])).messages.at(-1)?.status === "idle", "no owner");
});
