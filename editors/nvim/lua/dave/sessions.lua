--- Chats and their queries: each chat is one server session with its transcript; a query
--- streams its `$/progress` reports into the chat buffer and ends in the transcript.
local Chat = require("dave.chat")
local client = require("dave.client")
local config = require("dave.config")
local permissions = require("dave.permissions")

local M = {}

local CANCELLED = -32800
local CANCEL_GRACE_MS = 5000

local chats = {} ---@type table<string, dave.Session>
local order = {} ---@type string[] session ids, oldest first
local current = nil ---@type dave.Session?
local counter = 0

---@class dave.Query
---@field prompt string
---@field token string?
---@field parts string[] streamed text
---@field requests table<string, table> requestId -> its permissionRequest report
---@field denied table<string, boolean> toolUseIds whose permission was denied
---@field cancelling boolean?
---@field error_shown string? the message of the last `error` report, not to be shown twice
---@field generation integer? the server generation the query was sent to (nil: never sent)
---@field held boolean? waits for the folder's trust question (dave.trust), not sent yet
---@field done boolean?

---@class dave.Session
---@field id string
---@field chat dave.Chat
---@field transcript {role: string, content: string}[]
---@field synced integer? the server generation that holds this session's conversation
---@field query dave.Query?
---@field changes table[]? the `changes` of the chat's last turn that changed files
---@field queued {prompt: string, opts: table}[] prompts sent while a query ran, in order
---@field usage table? the last turn's `usage` (contextTokens, contextWindow)
---@field cost number? the sum of the chat's turns' `costUsd`
---@field agents table<string, boolean>? toolUseIds of the running query's Agent tool uses

-- The transcript rule (the VS Code extension follows the same one): a query sends the chat's
-- transcript as `messages` only when it is the session's first query to this server process
-- (`synced` is not the current generation: a new chat, or the server was restarted and may
-- have lost the conversation), and again after a query of the session failed (the backend may
-- have lost it: `finish` clears `synced`). Otherwise `messages` is empty. A query that was sent
-- and did not fail (answered or cancelled) marks the session synced with the generation it
-- went to; one that never reached a server leaves `synced` as it was.

local function new_session_id()
  counter = counter + 1
  return ("nvim-%s-%d-%d"):format(os.date("%Y%m%d-%H%M%S"), vim.fn.getpid(), counter)
end

local function title_of(prompt)
  local line = vim.trim(prompt:match("[^\n]*"))
  return #line > 40 and (vim.fn.strcharpart(line, 0, 39) .. "…") or line
end

local FILE_TOOLS = { Write = true, Edit = true, MultiEdit = true, NotebookEdit = true }

--- Files the turn changed are reloaded in the buffers that show them (unless modified there).
local function reload_buffers()
  pcall(vim.cmd, "silent! checktime")
end

--- `3 files changed (...)` under a turn whose result (or error data) lists `changes`.
local function note_changes(session, changes)
  if type(changes) ~= "table" or #changes == 0 then
    return
  end
  session.changes = changes
  reload_buffers()
  session.chat:append_note(("%d file%s changed (:Dave changes to review, :Dave undo to revert)"):format(
    #changes,
    #changes == 1 and "" or "s"
  ))
end

local function finish(session, query, outcome, message, changes)
  if query.done then
    return
  end
  query.done = true
  if query.token then
    client.untrack(query.token)
  end
  permissions.drop_session(session.id)
  if session.query == query then
    session.query = nil
  end
  local chat = session.chat
  local text = table.concat(query.parts)
  note_changes(session, changes)
  if outcome == "ok" then
    chat:set_status("ready", false)
  elseif outcome == "cancelled" then
    chat:append_note("_(cancelled)_")
    chat:set_status("cancelled", false)
  else
    if message ~= query.error_shown then
      chat:append_note("**Error:** " .. (message or "the query failed"))
    end
    chat:set_status("failed", false)
  end
  if outcome == "failed" then
    session.synced = nil -- the backend may have lost the conversation: resend it next time
  elseif query.generation then
    session.synced = query.generation -- that server process holds the conversation now
  end
  table.insert(session.transcript, { role = "user", content = query.prompt })
  if text ~= "" then
    table.insert(session.transcript, { role = "assistant", content = text })
  end
  if #session.queued > 0 then
    vim.schedule(function()
      M.next_queued(session)
    end)
  end
end

--- The server's description of a tool use (`toolUse` and `permissionRequest` reports carry it
--- in `message`, e.g. `Write notes.txt`); the tool name from a server that sends none. The
--- plugin never derives one from `input` itself.
local function described(value)
  if type(value.message) == "string" and value.message ~= "" then
    return value.message
  end
  return tostring(value.toolName or "tool")
end

--- Two spaces before the line of a subagent's tool use (one with `parentToolUseId`), so it
--- sits under its Agent tool line.
local function indent(value)
  return type(value.parentToolUseId) == "string" and "    " or ""
end

--- The status of a `retrying` report: `retrying: API Error 500, attempt 2 of 10, in 8 s`. The
--- error is the part of the server's message after `(attempt 2 of 10): `.
---@param value table
---@return string
function M.retry_status(value)
  local message = type(value.message) == "string" and value.message or ""
  local reason = message:match("%)%s*:%s*(.+)$") or (message ~= "" and message) or "the model request failed"
  local parts = { "retrying: " .. reason }
  if type(value.attempt) == "number" then
    local of = type(value.maxAttempts) == "number" and (" of %d"):format(value.maxAttempts) or ""
    table.insert(parts, ("attempt %d%s"):format(value.attempt, of))
  end
  if type(value.retryInMs) == "number" then
    table.insert(parts, ("in %d s"):format(math.max(1, math.ceil(value.retryInMs / 1000))))
  end
  return table.concat(parts, ", ")
end

--- A tool use's line, as the chat shows a `toolResult`: `✓ Write notes.txt (5 bytes)`.
local function tool_line(tool)
  local line = vim.trim(("%s %s"):format(tool.toolName or "tool", tool.summary or ""))
  return indent(tool) .. (tool.isError and "✗ " or "✓ ") .. line
end

--- One `$/progress` value of a query.
local function on_report(session, query, value)
  if query.done then
    return
  end
  local chat = session.chat
  local kind, type_ = value.kind, value.type
  if kind == "begin" then
    chat:set_status("working", true)
  elseif kind == "end" then
    -- The answer to a cancelled query may never be seen (Neovim drops RequestCancelled).
    if query.cancelling then
      finish(session, query, "cancelled")
    end
  elseif type_ == "token" then
    table.insert(query.parts, value.text)
    chat:append_text(value.text)
  elseif type_ == "thinking" then
    chat:set_status("thinking", true)
    if type(value.text) == "string" then
      chat:append_thinking(value.text)
    end
  elseif type_ == "toolUse" then
    chat:set_status("running " .. described(value), true)
    if value.toolName == "Agent" and not value.parentToolUseId then
      -- The subagent's tool lines go under this one.
      query.agents[value.toolUseId or ""] = true
      chat:append_note("▸ " .. described(value))
    end
  elseif type_ == "permissionRequest" then
    query.requests[value.requestId] = value
    chat:set_status("waiting for permission", true)
    local proposal = type(value.proposal) == "table" and value.proposal or nil
    if proposal and config.options.review.diff then
      chat:set_status("waiting for review", true) -- its block (dave.permissions) says how
    end
    local questions = type(value.questions) == "table" and #value.questions > 0 and value.questions or nil
    if questions then
      chat:set_status("waiting for your answer", true)
    elseif value.toolName == "ExitPlanMode" then
      chat:set_status("waiting for plan approval", true)
    end
    permissions.ask({
      requestId = value.requestId,
      sessionId = value.sessionId or session.id,
      toolName = value.toolName,
      message = value.message,
      input = type(value.input) == "table" and value.input or nil,
      allowAlways = value.allowAlways,
      proposal = proposal,
      questions = questions,
      plan = value.toolName == "ExitPlanMode" and (type(value.plan) == "string" and value.plan or "") or nil,
      title = chat.title,
      chat = chat,
    })
  elseif type_ == "permissionResolved" then
    permissions.resolved(value.requestId, value)
    local req = query.requests[value.requestId]
    local rule = type(value.rule) == "string" and value.rule ~= "" and value.rule or nil
    if req and value.decision == "deny" then
      query.denied[req.toolUseId or ""] = true
      chat:append_note(indent(req) .. ("✗ %s denied (%s)"):format(req.toolName, value.by or "user"))
    elseif value.decision == "allow" then
      if value.edited == true then
        chat:append_note(("✓ %s: your edited version was accepted (the model is told)"):format(
          tostring(req and req.toolName or value.toolName or "tool")
        ))
      end
      if rule then
        -- Say which rule let a tool run unasked, or which one the user just added, so a
        -- standing grant is never invisible in the chat.
        chat:append_note((value.by == "rule" and "✓ allowed by rule %s" or "✓ allowed always: %s"):format(rule))
      end
    end
    chat:set_status("working", true)
  elseif type_ == "toolResult" and not query.denied[value.toolUseId or ""] then
    chat:append_note(tool_line(value))
    if FILE_TOOLS[value.toolName] then
      reload_buffers()
    end
  elseif type_ == "status" and value.state == "retrying" then
    chat:set_status(M.retry_status(value), true)
  elseif type_ == "status" then
    chat:set_status(value.state or "working", true)
  elseif type_ == "error" then
    query.error_shown = value.message
    chat:append_note("**Error:** " .. tostring(value.message))
  end
  -- Other reports' `message` is a line for the status bar; these three use theirs above.
  if kind == "report" and value.message and type_ ~= "error" and type_ ~= "permissionRequest"
    and type_ ~= "toolUse" and value.state ~= "retrying" then
    chat:set_status(value.message, true)
  end
end

local function on_response(session, query, err, result)
  if query.done then -- ended already (server exit, cancel grace): a late answer changes nothing
    return
  end
  if not err then
    local streamed = table.concat(query.parts)
    -- Tokens are the source of the text; a server that sent none still shows its answer.
    if streamed == "" and result and result.text and result.text ~= "" then
      table.insert(query.parts, result.text)
      session.chat:append_text(result.text)
    end
    if result and type(result.usage) == "table" then
      session.usage = result.usage
    end
    if result and type(result.costUsd) == "number" then
      session.cost = (session.cost or 0) + result.costUsd
    end
    return finish(session, query, "ok", nil, result and result.changes)
  end
  local data = type(err.data) == "table" and err.data or {}
  if err.code == CANCELLED then
    return finish(session, query, "cancelled", nil, data.changes)
  end
  if table.concat(query.parts) == "" and type(data.partialText) == "string" then
    table.insert(query.parts, data.partialText)
  end
  finish(session, query, "failed", err.message, data.changes)
end

local actions = {} -- filled by init.lua: keymap actions of the chat buffer

local function remove(session)
  if chats[session.id] == session then
    chats[session.id] = nil
  end
  order = vim.tbl_filter(function(id)
    return chats[id] ~= nil and id ~= session.id
  end, order)
  if current == session then -- the newest chat left is current now (nil: none)
    current = order[#order] and chats[order[#order]] or nil
  end
end

--- Drops the chats whose buffer was wiped; their running queries are cancelled.
local function prune()
  for _, session in pairs(chats) do
    if not session.chat:valid() then
      remove(session)
      M.cancel(session)
    end
  end
end

---@param id string? an existing server session to attach to
---@param title string?
---@return dave.Session
function M.new(id, title)
  prune()
  id = id or new_session_id()
  local session = {
    id = id,
    chat = Chat.new(id, title, actions),
    transcript = {},
    queued = {},
  }
  chats[id] = session
  table.insert(order, id)
  current = session
  return session
end

function M.set_actions(a)
  for k, v in pairs(a) do
    actions[k] = v
  end
end

--- The current chat, if there is one.
---@return dave.Session?
function M.peek()
  prune()
  return current
end

--- The current chat, created when there is none.
---@return dave.Session
function M.current()
  return M.peek() or M.new()
end

---@return dave.Session?
function M.get(id)
  prune()
  return chats[id]
end

function M.select(session)
  current = session
end

--- Every chat of this Neovim, oldest first.
---@return dave.Session[]
function M.list()
  prune()
  return vim.tbl_map(function(id)
    return chats[id]
  end, order)
end

--- Sends a prompt in the session; its answer streams into the chat.
---@param session dave.Session
---@param prompt string
---@param opts {context: table?, note: string?, attachments: table[]?}? `context` of the query
--- (context.lua); `note`, a line shown under the prompt in the chat (what goes along);
--- `attachments`, images. While a query runs in the chat the prompt is queued: it is sent when
--- the queries before it have ended (`:Dave unqueue` removes it before that).
function M.ask(session, prompt, opts)
  opts = opts or {}
  if session.query or #session.queued > 0 then
    table.insert(session.queued, { prompt = prompt, opts = opts })
    session.chat:append_note(("⏳ queued (%d): %s  (:Dave unqueue removes it)"):format(
      #session.queued,
      title_of(prompt)
    ))
    return
  end
  local chat = session.chat
  if #session.transcript == 0 and chat.title == "new chat" then
    chat:set_title(title_of(prompt))
  end
  local query = { prompt = prompt, parts = {}, requests = {}, denied = {}, agents = {} }
  session.query = query
  chat:begin_turn(prompt, opts.note)
  chat:set_status("starting", true)
  client.with_client(function(c, err)
    if query.done then
      return
    end
    if not c then
      return finish(session, query, "failed", err)
    end
    if query.cancelling then
      return finish(session, query, "cancelled")
    end
    -- The first query in a folder whose settings would run code asks whether to trust it.
    query.held = true
    require("dave.trust").before_query(session, function()
      query.held = false
      if query.done then
        return
      end
      if query.cancelling then
        return finish(session, query, "cancelled")
      end
      chat:set_status("starting", true)
      query.token = client.track(function(value)
        on_report(session, query, value)
      end)
      query.generation = client.generation()
      local resend = session.synced ~= query.generation -- the transcript rule, above
      client.request("dave/query", {
        sessionId = session.id,
        prompt = prompt,
        messages = resend and session.transcript or {},
        workDoneToken = query.token,
        context = opts.context,
        attachments = opts.attachments,
      }, function(rpc_err, result)
        on_response(session, query, rpc_err, result)
      end)
    end)
  end)
end

--- Sends the first queued prompt of the session, when no query runs there.
function M.next_queued(session)
  if session.query or #session.queued == 0 or chats[session.id] ~= session then
    return
  end
  local next_one = table.remove(session.queued, 1)
  M.ask(session, next_one.prompt, next_one.opts)
end

--- Removes a queued prompt (default: the last one queued); returns its text, or nil.
---@param index integer?
---@return string?
function M.unqueue(session, index)
  local n = #session.queued
  index = index or n
  if index < 1 or index > n then
    return nil
  end
  local removed = table.remove(session.queued, index)
  session.chat:append_note(("⏳ unqueued: %s"):format(title_of(removed.prompt)))
  return removed.prompt
end

--- Stops the session's running query; the session keeps its history.
function M.cancel(session)
  local query = session.query
  if not query then
    return false
  end
  query.cancelling = true
  if query.held then -- never sent: nothing to wait for
    finish(session, query, "cancelled")
    return true
  end
  session.chat:set_status("cancelling", true)
  if query.token then
    client.notify("window/workDoneProgress/cancel", { token = query.token })
  end
  -- The answer to a cancelled query can be lost; do not wait for it forever.
  vim.defer_fn(function()
    finish(session, query, "cancelled")
  end, CANCEL_GRACE_MS)
  return true
end

--- Drops the chat locally (its buffer too).
function M.forget(session)
  remove(session)
  session.queued = {}
  if session.query then
    finish(session, session.query, "cancelled")
  end
  session.chat:destroy()
end

--- Deletes the session on the server (its backend process ends), then the chat.
---@param session dave.Session
---@param done fun(deleted: boolean, err: string?)?
function M.delete(session, done)
  client.request("dave/deleteSession", { sessionId = session.id }, function(err, result)
    M.forget(session)
    if done then
      done(not err and result and result.deleted or false, err and err.message)
    end
  end)
end

--- Shows a session's conversation from the server (`dave/history`) in its chat, which has
--- none yet (a remembered session opened from `:Dave sessions`), and makes it the chat's
--- transcript (sent along if the server ever lacks the conversation).
---@param session dave.Session
function M.show_history(session)
  if not client.supports("dave/history") then
    return
  end
  client.request("dave/history", { sessionId = session.id }, function(err, result)
    local chat = session.chat
    if #session.transcript > 0 or session.query or not chat:valid() then
      return -- the chat has its own turns by now
    end
    if err or type(result) ~= "table" then
      return chat:append_note(("_(the conversation could not be read: %s)_"):format(err and err.message or "no answer"))
    end
    if result.available == false then
      return chat:append_note(("_(%s)_"):format(tostring(result.reason or "the backend kept no record")))
    end
    local answer = nil ---@type string[]?
    local function close_answer()
      if answer and #answer > 0 then
        table.insert(session.transcript, { role = "assistant", content = table.concat(answer) })
      end
      answer = nil
    end
    for _, entry in ipairs(type(result.entries) == "table" and result.entries or {}) do
      if entry.role == "user" then
        close_answer()
        local text = tostring(entry.text or "")
        chat:begin_turn(text)
        table.insert(session.transcript, { role = "user", content = text })
        answer = {}
      elseif entry.role == "assistant" then
        answer = answer or {}
        if type(entry.thinking) == "string" and entry.thinking ~= "" then
          chat:append_thinking(entry.thinking)
        end
        if type(entry.text) == "string" and entry.text ~= "" then
          chat:append_text(entry.text)
          table.insert(answer, entry.text)
        end
        for _, tool in ipairs(type(entry.toolUses) == "table" and entry.toolUses or {}) do
          chat:append_note(tool_line(tool))
        end
      end
    end
    close_answer()
    local turns = #vim.tbl_filter(function(m)
      return m.role == "user"
    end, session.transcript)
    chat:append_note(("_(%d earlier turn%s, from the server)_"):format(turns, turns == 1 and "" or "s"))
  end)
end

-- A server that exits ends every running query.
client.on_exit(function(message)
  for _, session in pairs(chats) do
    if session.query then
      finish(session, session.query, session.query.cancelling and "cancelled" or "failed", message)
    end
  end
end)

return M
