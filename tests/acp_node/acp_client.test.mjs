// The official ACP TypeScript SDK's client side drives `dave-lsp acp` (the real
// agent, the bundled Claude Code CLI, the shipped fake model), and every message the
// agent sends is checked against the SDK's own zod schemas: requests and
// notifications by method, responses by the method of the request they answer.
// The validators are lenient (a malformed optional field is dropped, not refused), so
// a field the SDK's parse loses counts as rejected too.
// Run: `bash tests/acp_node/run.sh` (npm ci, then node --test).
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { Readable, Writable } from "node:stream";
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath, pathToFileURL } from "node:url";

import * as acp from "@agentclientprotocol/sdk";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "../..");
const python = process.env.DAVE_LSP_PYTHON || join(repo, ".venv/bin/python");
// The SDK's generated validators; not in its exports map, so imported by file. The
// unstable ones: a superset of the stable schema that also knows what dave-lsp offers
// from the spec's unstable part (`sessionCapabilities.fork` and `session/fork`).
const zod = await import(
  pathToFileURL(
    join(here, "node_modules/@agentclientprotocol/sdk/dist/v1/unstable/schema/zod.gen.js"),
  ).href
);

const RESPONSES = {
  initialize: zod.zInitializeResponse,
  "session/new": zod.zNewSessionResponse,
  "session/load": zod.zLoadSessionResponse,
  "session/list": zod.zListSessionsResponse,
  "session/resume": zod.zResumeSessionResponse,
  "session/prompt": zod.zPromptResponse,
  "session/set_mode": zod.zSetSessionModeResponse,
  "session/set_config_option": zod.zSetSessionConfigOptionResponse,
  "session/delete": zod.zDeleteSessionResponse,
  "session/fork": zod.zForkSessionResponse,
};
const INCOMING = {
  "session/update": zod.zSessionNotification,
  "session/request_permission": zod.zRequestPermissionRequest,
  "fs/read_text_file": zod.zReadTextFileRequest,
  "fs/write_text_file": zod.zWriteTextFileRequest,
  "elicitation/create": zod.zCreateElicitationRequest,
  "terminal/create": zod.zCreateTerminalRequest,
  "terminal/output": zod.zTerminalOutputRequest,
  "terminal/wait_for_exit": zod.zWaitForTerminalExitRequest,
  "terminal/kill": zod.zKillTerminalRequest,
  "terminal/release": zod.zReleaseTerminalRequest,
  "$/cancel_request": zod.zCancelRequestNotification,
};

/** Where `raw` has a field (or an array item) that the SDK's parse of it lost. */
function lost(raw, parsed, where = "") {
  if (raw === null || raw === undefined || typeof raw !== "object") return [];
  if (parsed === null || parsed === undefined || typeof parsed !== "object") return [where || "."];
  if (Array.isArray(raw)) {
    if (!Array.isArray(parsed) || parsed.length !== raw.length) return [`${where}[]`];
    return raw.flatMap((item, i) => lost(item, parsed[i], `${where}[${i}]`));
  }
  return Object.entries(raw).flatMap(([key, value]) => {
    if (value === null || value === undefined) return [];
    if (!(key in parsed) || parsed[key] === undefined) return [`${where}.${key}`];
    return lost(value, parsed[key], `${where}.${key}`);
  });
}

let fake;
let fakeUrl;
const work = mkdtempSync(join(tmpdir(), "dave-acp-node-"));
const home = join(work, "home");
const state = join(work, "state");
mkdirSync(home);

before(async () => {
  fake = spawn(python, ["-m", "dave_lsp.testing"], { stdio: ["ignore", "ignore", "pipe"] });
  fakeUrl = await new Promise((ok, fail) => {
    let seen = "";
    fake.stderr.on("data", (chunk) => {
      seen += chunk;
      const found = /listening on (\S+)/.exec(seen);
      if (found) ok(found[1]);
    });
    fake.on("exit", (code) => fail(new Error(`fake model exited ${code}: ${seen}`)));
  });
});

after(() => fake?.kill("SIGTERM"));

/** Start `dave-lsp acp` and connect the SDK's client to it. */
function startAgent({ onPermission, buffers = null, onElicitation = null, terminals = null }) {
  const env = {
    ANTHROPIC_BASE_URL: fakeUrl,
    ANTHROPIC_API_KEY: "sk-ant-fake-test-key-0123456789",
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
    CLAUDE_CODE_MAX_RETRIES: "0",
    HOME: home,
  };
  const args = ["-m", "dave_lsp", "acp", `--state-dir=${state}`, `--cwd=${work}`, "--prewarm=0"];
  for (const [key, value] of Object.entries(env)) args.push(`--env=${key}=${value}`);
  const child = spawn(python, args, { stdio: ["pipe", "pipe", "inherit"] });
  const rejected = [];
  const sentMethods = new Map();
  const updates = [];

  // Tap both directions: remember what each of our requests asked for, and check
  // every message that arrives before the SDK sees it.
  const base = acp.ndJsonStream(Writable.toWeb(child.stdin), Readable.toWeb(child.stdout));
  const checked = base.readable.pipeThrough(
    new TransformStream({
      transform(message, controller) {
        let schema;
        let what;
        if (message.method) {
          schema = INCOMING[message.method];
          what = message.method;
          if (!schema) rejected.push(`unexpected method ${message.method}`);
        } else if (message.id !== undefined && message.id !== null) {
          what = `${sentMethods.get(message.id)} response`;
          schema = message.error ? null : RESPONSES[sentMethods.get(message.id)];
        }
        if (schema) {
          const raw = message.method ? message.params : message.result;
          const parsed = schema.safeParse(raw);
          if (!parsed.success) rejected.push(`${what}: ${parsed.error.message}`);
          else rejected.push(...lost(raw, parsed.data).map((field) => `${what}: ${field} dropped`));
        }
        controller.enqueue(message);
      },
    }),
  );
  const writer = base.writable.getWriter();
  const tapped = new WritableStream({
    write(message) {
      if (message.method && message.id !== undefined) sentMethods.set(message.id, message.method);
      return writer.write(message);
    },
    close: () => writer.close(),
  });

  let app = acp
    .client({ name: "dave-acp-node-test" })
    .onRequest("session/request_permission", ({ params }) => onPermission(params));
  if (onElicitation) {
    app = app.onRequest("elicitation/create", ({ params }) => onElicitation(params));
  }
  if (buffers) {
    // The editor's unsaved text, by path; the disk for a path it has no buffer of.
    app = app
      .onRequest("fs/read_text_file", ({ params }) => ({
        content: buffers.get(params.path) ?? readFileSync(params.path, "utf8"),
      }))
      .onRequest("fs/write_text_file", ({ params }) => {
        buffers.set(params.path, params.content);
        return {};
      });
  }
  if (terminals) app = serveTerminals(app, terminals);
  app = app
    .onNotification("session/update", ({ params }) => {
      updates.push(params);
    });
  const connection = app.connect({ readable: checked, writable: tapped });
  return {
    agent: connection.agent,
    updates,
    rejected,
    async stop() {
      connection.close();
      child.stdin.end();
      await new Promise((ok) => child.on("exit", ok));
    },
  };
}

/** The client's terminals, run for real: `terminals.calls` keeps every request,
 * `terminals.live` the terminals not released, `terminals.released` the others. */
function serveTerminals(app, terminals) {
  const of = (params) => {
    const found = terminals.live.get(params.terminalId);
    if (!found) throw acp.RequestError.invalidParams({ terminalId: params.terminalId });
    return found;
  };
  const kill = (t) => {
    if (t.exit === null) process.kill(-t.child.pid, "SIGKILL");
  };
  const serve = (method, handle) => (cx) => {
    terminals.calls.push([method, cx.params]);
    return handle(cx);
  };
  return app
    .onRequest(
      "terminal/create",
      serve("terminal/create", ({ params }) => {
        const child = spawn(params.command, params.args ?? [], {
          cwd: params.cwd,
          detached: true, // its own process group, killed whole
          stdio: ["ignore", "pipe", "pipe"],
        });
        const t = { child, output: "", exit: null };
        t.exited = new Promise((ok) =>
          child.on("exit", (exitCode, signal) => {
            t.exit = { exitCode, signal };
            ok();
          }),
        );
        child.stdout.on("data", (data) => (t.output += data));
        child.stderr.on("data", (data) => (t.output += data));
        const terminalId = `term-${child.pid}`;
        terminals.live.set(terminalId, t);
        return { terminalId };
      }),
    )
    .onRequest(
      "terminal/output",
      serve("terminal/output", ({ params }) => {
        const t = of(params);
        return { output: t.output, truncated: false, ...(t.exit ? { exitStatus: t.exit } : {}) };
      }),
    )
    .onRequest(
      "terminal/wait_for_exit",
      serve("terminal/wait_for_exit", async ({ params, signal }) => {
        const t = of(params);
        const cancelled = new Promise((_, no) =>
          signal.addEventListener("abort", () => no(signal.reason), { once: true }),
        );
        await Promise.race([t.exited, cancelled]);
        return t.exit;
      }),
    )
    .onRequest(
      "terminal/kill",
      serve("terminal/kill", async ({ params }) => {
        const t = of(params);
        kill(t);
        await t.exited;
        return {};
      }),
    )
    .onRequest(
      "terminal/release",
      serve("terminal/release", async ({ params }) => {
        const t = of(params);
        kill(t);
        await t.exited;
        terminals.live.delete(params.terminalId);
        terminals.released.push(t);
        return {};
      }),
    );
}

const waitFor = async (what, ready, ms = 10000) => {
  const until = Date.now() + ms;
  while (!ready()) {
    if (Date.now() > until) assert.fail(`no ${what} within ${ms} ms`);
    await new Promise((ok) => setTimeout(ok, 20));
  }
};

const ofKind = (updates, sessionId, kind) =>
  updates.filter((u) => u.sessionId === sessionId && u.update.sessionUpdate === kind).map((u) => u.update);

const texts = (updates, sessionId, kind = "agent_message_chunk") =>
  updates
    .filter((u) => u.sessionId === sessionId && u.update.sessionUpdate === kind)
    .map((u) => u.update.content.text)
    .join("");

let sessionId;
let permissions = [];
let answer = "allow_once";

test("initialize, a session, a streamed prompt and a follow-up", async () => {
  const peer = startAgent({
    onPermission: (params) => {
      permissions.push(params);
      return { outcome: { outcome: "selected", optionId: answer } };
    },
  });
  try {
    const init = await peer.agent.request("initialize", {
      protocolVersion: acp.PROTOCOL_VERSION,
      clientCapabilities: { fs: { readTextFile: false, writeTextFile: false } },
    });
    assert.equal(init.protocolVersion, 1);
    assert.equal(init.agentCapabilities.loadSession, true);

    const created = await peer.agent.request("session/new", { cwd: work, mcpServers: [] });
    sessionId = created.sessionId;
    const first = await peer.agent.request("session/prompt", {
      sessionId,
      prompt: [{ type: "text", text: "think about ducks" }],
    });
    assert.equal(first.stopReason, "end_turn");
    assert.equal(texts(peer.updates, sessionId), "Thought: about ducks");
    assert.equal(texts(peer.updates, sessionId, "agent_thought_chunk"), "Thinking about about ducks");

    // A Write asks, with the diff; allowed, it lands.
    writeFileSync(join(work, "notes.txt"), "old\n");
    const wrote = await peer.agent.request("session/prompt", {
      sessionId,
      prompt: [{ type: "text", text: "write notes.txt new" }],
    });
    assert.equal(wrote.stopReason, "end_turn");
    assert.equal(readFileSync(join(work, "notes.txt"), "utf8"), "new");
    const [asked] = permissions;
    assert.deepEqual(asked.toolCall.content, [
      { type: "diff", path: join(work, "notes.txt"), oldText: "old\n", newText: "new" },
    ]);
    assert.ok(peer.updates.some((u) => u.update.sessionUpdate === "tool_call"));

    // Rejected: the file stays.
    answer = "reject_once";
    await peer.agent.request("session/prompt", {
      sessionId,
      prompt: [{ type: "text", text: "write notes.txt rejected" }],
    });
    assert.equal(readFileSync(join(work, "notes.txt"), "utf8"), "new");

    // Cancel: the turn ends as cancelled, quickly, and the session goes on.
    const slow = peer.agent.request("session/prompt", {
      sessionId,
      prompt: [{ type: "text", text: "slow 200 50" }],
    });
    while (!texts(peer.updates, sessionId).includes("s0")) await new Promise((ok) => setTimeout(ok, 20));
    const started = Date.now();
    await peer.agent.notify("session/cancel", { sessionId });
    assert.equal((await slow).stopReason, "cancelled");
    assert.ok(Date.now() - started < 2000, `cancel took ${Date.now() - started} ms`);
    const after = await peer.agent.request("session/prompt", {
      sessionId,
      prompt: [{ type: "text", text: "recall" }],
    });
    assert.equal(after.stopReason, "end_turn");

    await peer.agent.request("session/set_mode", { sessionId, modeId: "acceptEdits" });
    await peer.agent.request("session/set_config_option", {
      sessionId,
      configId: "model",
      value: "haiku",
    });
    const commands = peer.updates.find((u) => u.update.sessionUpdate === "available_commands_update");
    assert.ok(commands, "no available_commands_update");
    // The context meter, once the window is known: validated like every update.
    assert.ok(peer.updates.some((u) => u.update.sessionUpdate === "usage_update"), "no usage_update");
    assert.deepEqual(peer.rejected, []);
  } finally {
    await peer.stop();
  }
});

test("session/load after a restart replays the conversation", async () => {
  const peer = startAgent({ onPermission: () => ({ outcome: { outcome: "cancelled" } }) });
  try {
    await peer.agent.request("initialize", { protocolVersion: 1, clientCapabilities: {} });
    const listed = await peer.agent.request("session/list", {});
    assert.ok(listed.sessions.some((s) => s.sessionId === sessionId));
    await peer.agent.request("session/load", { sessionId, cwd: work, mcpServers: [] });
    assert.match(texts(peer.updates, sessionId, "user_message_chunk"), /think about ducks/);
    assert.match(texts(peer.updates, sessionId), /Thought: about ducks/);
    assert.ok(peer.updates.some((u) => u.update.sessionUpdate === "tool_call"));
    assert.deepEqual(peer.rejected, []);
  } finally {
    await peer.stop();
  }
});

test("a client's file system: reads see its buffers, edits go through it", async () => {
  const buffers = new Map();
  const asked = [];
  const peer = startAgent({
    buffers,
    onPermission: (params) => {
      asked.push(params);
      return { outcome: { outcome: "selected", optionId: "allow_once" } };
    },
  });
  try {
    await peer.agent.request("initialize", {
      protocolVersion: 1,
      clientCapabilities: { fs: { readTextFile: true, writeTextFile: true } },
    });
    const path = join(work, "buffer.txt");
    writeFileSync(path, "on disk\n");
    buffers.set(path, "in the buffer\n");
    const { sessionId: fsSession } = await peer.agent.request("session/new", {
      cwd: work,
      mcpServers: [],
    });
    const prompt = (text) =>
      peer.agent.request("session/prompt", { sessionId: fsSession, prompt: [{ type: "text", text }] });
    await prompt(`tool mcp__acp__Read ${JSON.stringify({ file_path: path })}`);
    assert.match(texts(peer.updates, fsSession), /in the buffer/);
    const edit = { file_path: path, old_string: "in the", new_string: "edited in the" };
    await prompt(`tool mcp__acp__Edit ${JSON.stringify(edit)}`);
    assert.deepEqual(asked[0].toolCall.content, [
      { type: "diff", path, oldText: "in the buffer\n", newText: "edited in the buffer\n" },
    ]);
    assert.equal(buffers.get(path), "edited in the buffer\n");
    assert.equal(readFileSync(path, "utf8"), "on disk\n");
    // Unasked (acceptEdits): the diff comes with the completed tool call.
    await peer.agent.request("session/set_mode", { sessionId: fsSession, modeId: "acceptEdits" });
    const fresh = join(work, "fresh.txt");
    await prompt(`tool mcp__acp__Write ${JSON.stringify({ file_path: fresh, content: "new\n" })}`);
    assert.equal(buffers.get(fresh), "new\n");
    const done = peer.updates.filter(
      (u) => u.update.sessionUpdate === "tool_call_update" && u.update.status === "completed",
    );
    assert.ok(done.at(-1).update.content.some((c) => c.type === "diff" && c.path === fresh));
    assert.deepEqual(peer.rejected, []);
  } finally {
    await peer.stop();
  }
});

test("a first prompt's title and message ids, permission option ids, session/fork and delete", async () => {
  const asked = [];
  const peer = startAgent({
    onPermission: (params) => {
      asked.push(params);
      return { outcome: { outcome: "selected", optionId: "allow_always" } };
    },
  });
  try {
    const init = await peer.agent.request("initialize", { protocolVersion: 1, clientCapabilities: {} });
    assert.deepEqual(init.agentCapabilities.sessionCapabilities, {
      list: {},
      resume: {},
      close: {},
      delete: {},
      additionalDirectories: {},
      fork: {},
    });
    // A folder of its own: the earlier tests' acceptEdits does not carry over to it.
    const folder = join(work, "titled");
    mkdirSync(folder);
    const created = await peer.agent.request("session/new", { cwd: folder, mcpServers: [] });
    const titled = created.sessionId;
    assert.equal(created.modes.currentModeId, "default");
    const prompt = (text) =>
      peer.agent.request("session/prompt", { sessionId: titled, prompt: [{ type: "text", text }] });
    assert.equal((await prompt("think about geese")).stopReason, "end_turn");
    await waitFor("session_info_update", () => ofKind(peer.updates, titled, "session_info_update").length);
    const [info] = ofKind(peer.updates, titled, "session_info_update");
    assert.equal(info.title, "think about geese");
    assert.match(info.updatedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d/);
    // One id per model message, as the SDK handed them on: the thinking's, the text's.
    const ids = (kind) => new Set(ofKind(peer.updates, titled, kind).map((u) => u.messageId));
    const [thought] = ids("agent_thought_chunk");
    const [said] = ids("agent_message_chunk");
    assert.equal(ids("agent_thought_chunk").size, 1);
    assert.equal(ids("agent_message_chunk").size, 1);
    assert.ok(typeof thought === "string" && typeof said === "string" && thought !== said);

    // A Write asks with options whose ids are their kinds; "always" allows this one
    // and the next edit in the folder goes unasked.
    const firstChunks = ofKind(peer.updates, titled, "agent_message_chunk").length;
    writeFileSync(join(folder, "always.txt"), "old\n");
    await prompt("write always.txt first");
    assert.equal(readFileSync(join(folder, "always.txt"), "utf8"), "first");
    assert.equal(asked.length, 1);
    const options = asked[0].options.map((o) => [o.optionId, o.kind]);
    assert.deepEqual(options, [
      ["allow_once", "allow_once"],
      ["allow_always", "allow_always"],
      ["reject_once", "reject_once"],
    ]);
    await prompt("write always.txt second");
    assert.equal(readFileSync(join(folder, "always.txt"), "utf8"), "second");
    assert.equal(asked.length, 1);
    const later = ofKind(peer.updates, titled, "agent_message_chunk").slice(firstChunks);
    assert.ok(later.length && later.every((u) => typeof u.messageId === "string"));
    assert.ok(!later.some((u) => u.messageId === said), "the next turn's messages have new ids");
    assert.equal(ofKind(peer.updates, titled, "session_info_update").length, 1); // title unchanged

    // session/fork (unstable in the spec): a new session holding this one's turns.
    const forked = await peer.agent.request("session/fork", {
      sessionId: titled,
      cwd: folder,
      mcpServers: [],
    });
    assert.ok(forked.sessionId && forked.sessionId !== titled);
    assert.equal(forked.modes.currentModeId, "default");

    const listed = await peer.agent.request("session/list", {});
    assert.ok(listed.sessions.some((s) => s.sessionId === forked.sessionId));
    assert.equal(listed.sessions.find((s) => s.sessionId === titled)?.title, "think about geese");
    assert.deepEqual(await peer.agent.request("session/delete", { sessionId: titled }), {});
    const after = await peer.agent.request("session/list", {});
    assert.ok(!after.sessions.some((s) => s.sessionId === titled));
    assert.deepEqual(peer.rejected, []);
  } finally {
    await peer.stop();
  }
});

test("the model's questions as one elicitation/create form", async () => {
  const forms = [];
  const permissions = [];
  const peer = startAgent({
    onPermission: (params) => {
      permissions.push(params);
      return { outcome: { outcome: "cancelled" } };
    },
    onElicitation: (params) => {
      forms.push(params);
      return { action: "accept", content: { q1: "Red", q2: ["S", "L"] } };
    },
  });
  try {
    await peer.agent.request("initialize", {
      protocolVersion: 1,
      clientCapabilities: { elicitation: { form: {} } },
    });
    const { sessionId: asking } = await peer.agent.request("session/new", { cwd: work, mcpServers: [] });
    const questions = [
      {
        question: "Which color for the node test?",
        header: "Color",
        multiSelect: false,
        options: [
          { label: "Blue", description: "Calm" },
          { label: "Red", description: "Loud" },
        ],
      },
      {
        question: "Which sizes for the node test?",
        header: "Size",
        multiSelect: true,
        options: [
          { label: "S", description: "" },
          { label: "L", description: "" },
        ],
      },
    ];
    const done = await peer.agent.request("session/prompt", {
      sessionId: asking,
      prompt: [{ type: "text", text: `tool AskUserQuestion ${JSON.stringify({ questions })}` }],
    });
    assert.equal(done.stopReason, "end_turn");
    assert.deepEqual(permissions, []);
    assert.equal(forms.length, 1);
    const [form] = forms;
    const [call] = ofKind(peer.updates, asking, "tool_call");
    assert.equal(form.mode, "form");
    assert.equal(form.sessionId, asking);
    assert.equal(form.toolCallId, call.toolCallId);
    const props = form.requestedSchema.properties;
    assert.equal(props.q1.title, "Which color for the node test?");
    assert.deepEqual(props.q1.oneOf.map((o) => [o.const, o.description]), [
      ["Blue", "Calm"],
      ["Red", "Loud"],
    ]);
    assert.equal(props.q2.type, "array");
    assert.equal(props.q1_other.type, "string");
    const said = texts(peer.updates, asking);
    assert.ok(said.includes('"Which color for the node test?"="Red"'), said);
    assert.ok(said.includes('"Which sizes for the node test?"="S, L"'), said);
    assert.deepEqual(peer.rejected, []);
  } finally {
    await peer.stop();
  }
});

test("$/cancel_request of a running prompt ends it cancelled", async () => {
  const peer = startAgent({ onPermission: () => ({ outcome: { outcome: "cancelled" } }) });
  try {
    await peer.agent.request("initialize", { protocolVersion: 1, clientCapabilities: {} });
    const { sessionId: slowed } = await peer.agent.request("session/new", { cwd: work, mcpServers: [] });
    const stop = new AbortController();
    // The SDK sends `$/cancel_request` for the request when its signal aborts.
    const slow = peer.agent.request(
      "session/prompt",
      { sessionId: slowed, prompt: [{ type: "text", text: "slow 200 50" }] },
      { cancellationSignal: stop.signal },
    );
    await waitFor("s0", () => texts(peer.updates, slowed).includes("s0"));
    const started = Date.now();
    stop.abort();
    assert.equal((await slow).stopReason, "cancelled");
    assert.ok(Date.now() - started < 2000, `cancel took ${Date.now() - started} ms`);
    assert.ok(!texts(peer.updates, slowed).includes("s199"));
    const next = await peer.agent.request("session/prompt", {
      sessionId: slowed,
      prompt: [{ type: "text", text: "think again" }],
    });
    assert.equal(next.stopReason, "end_turn");
    assert.match(texts(peer.updates, slowed), /Thought: again$/);
    assert.deepEqual(peer.rejected, []);
  } finally {
    await peer.stop();
  }
});

test("the mode as a config option: session/set_config_option and config_option_update", async () => {
  const asked = [];
  const peer = startAgent({
    onPermission: (params) => {
      asked.push(params);
      return { outcome: { outcome: "selected", optionId: "allow_once" } };
    },
  });
  try {
    await peer.agent.request("initialize", { protocolVersion: 1, clientCapabilities: {} });
    const folder = join(work, "configured");
    mkdirSync(folder);
    const created = await peer.agent.request("session/new", { cwd: folder, mcpServers: [] });
    const configured = created.sessionId;
    const option = (options, id) => options.find((o) => o.id === id);
    const mode = option(created.configOptions, "mode");
    assert.equal(mode.category, "mode");
    assert.equal(mode.type, "select");
    assert.equal(mode.currentValue, "default");
    assert.deepEqual(
      mode.options.map((o) => o.value),
      ["default", "acceptEdits", "plan", "bypassPermissions"],
    );
    assert.equal(option(created.configOptions, "model").category, "model");

    const set = await peer.agent.request("session/set_config_option", {
      sessionId: configured,
      configId: "mode",
      value: "acceptEdits",
    });
    assert.equal(option(set.configOptions, "mode").currentValue, "acceptEdits");
    // In acceptEdits, a write in the session's folder goes unasked.
    await peer.agent.request("session/prompt", {
      sessionId: configured,
      prompt: [{ type: "text", text: "write configured.txt unasked" }],
    });
    assert.equal(readFileSync(join(folder, "configured.txt"), "utf8"), "unasked");
    assert.deepEqual(asked, []);

    // session/set_mode tells a config-option client through config_option_update.
    await peer.agent.request("session/set_mode", { sessionId: configured, modeId: "default" });
    await waitFor("config_option_update", () =>
      ofKind(peer.updates, configured, "config_option_update").length,
    );
    const [update] = ofKind(peer.updates, configured, "config_option_update");
    assert.equal(option(update.configOptions, "mode").currentValue, "default");
    await peer.agent.request("session/prompt", {
      sessionId: configured,
      prompt: [{ type: "text", text: "write configured.txt asked" }],
    });
    assert.equal(asked.length, 1);
    assert.equal(readFileSync(join(folder, "configured.txt"), "utf8"), "asked");
    assert.deepEqual(peer.rejected, []);
  } finally {
    await peer.stop();
  }
});

test("Bash in the client's terminal: its output reaches the model; a cancel kills and releases it", async () => {
  const terminals = { calls: [], live: new Map(), released: [] };
  const peer = startAgent({
    terminals,
    onPermission: () => ({ outcome: { outcome: "selected", optionId: "allow_once" } }),
  });
  try {
    await peer.agent.request("initialize", {
      protocolVersion: 1,
      clientCapabilities: { terminal: true },
    });
    const { sessionId: shell } = await peer.agent.request("session/new", { cwd: work, mcpServers: [] });
    const bash = (command) => ({
      sessionId: shell,
      prompt: [{ type: "text", text: `tool mcp__acp__Bash ${JSON.stringify({ command })}` }],
    });
    const done = await peer.agent.request("session/prompt", bash("echo node-$((3 * 4))"));
    assert.equal(done.stopReason, "end_turn");
    assert.match(texts(peer.updates, shell), /^Tool said: node-12/);
    const methods = () => terminals.calls.map(([method]) => method);
    assert.deepEqual(methods(), [
      "terminal/create",
      "terminal/wait_for_exit",
      "terminal/output",
      "terminal/release",
    ]);
    const [, created] = terminals.calls[0];
    assert.deepEqual(created.args, ["-c", "echo node-$((3 * 4))"]);
    assert.equal(created.cwd, work);
    const completed = ofKind(peer.updates, shell, "tool_call_update").filter((u) => u.status === "completed");
    assert.equal(completed.at(-1).content[0].type, "terminal");

    // A cancel mid-command (the SDK's cancellationSignal: $/cancel_request of the prompt).
    terminals.calls.length = 0;
    const stop = new AbortController();
    const slow = peer.agent.request("session/prompt", bash("sleep 30"), { cancellationSignal: stop.signal });
    await waitFor("the wait", () => methods().includes("terminal/wait_for_exit"), 30000);
    const started = Date.now();
    stop.abort();
    assert.equal((await slow).stopReason, "cancelled");
    assert.ok(Date.now() - started < 2000, `cancel took ${Date.now() - started} ms`);
    await waitFor("the release", () => methods().includes("terminal/release"));
    assert.deepEqual(methods().slice(-2), ["terminal/kill", "terminal/release"]);
    assert.equal(terminals.live.size, 0);
    assert.equal(terminals.released.at(-1).exit.signal, "SIGKILL");
    assert.deepEqual(peer.rejected, []);
  } finally {
    await peer.stop();
  }
});
