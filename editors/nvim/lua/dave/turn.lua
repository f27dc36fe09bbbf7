--- A query's turn in its chat: its `$/progress` reports shown as they come (text, thinking,
--- tool lines, permission requests, retries, errors), its answer, and its end (`finish`: the
--- status, the note of changed files, the transcript, the next queued prompt). dave.sessions
--- sends the query; this module shows what comes back.
local client = require("dave.client")
local config = require("dave.config")
local permissions = require("dave.permissions")

local M = {}

local CANCELLED = -32800

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

--- The query ended: outcome "ok", "cancelled" or "failed" (message: why); changes: the files
--- the turn changed. A second finish does nothing.
---@param session dave.Session
---@param query dave.Query
---@param outcome string
---@param message string?
---@param changes table[]?
function M.finish(session, query, outcome, message, changes)
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
      require("dave.sessions").next_queued(session)
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
function M.tool_line(tool)
  local line = vim.trim(("%s %s"):format(tool.toolName or "tool", tool.summary or ""))
  return indent(tool) .. (tool.isError and "✗ " or "✓ ") .. line
end

--- One `$/progress` value of a query.
---@param session dave.Session
---@param query dave.Query
---@param value table
function M.report(session, query, value)
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
      M.finish(session, query, "cancelled")
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
    chat:append_note(M.tool_line(value))
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

--- The answer to `dave/query` (err: its error, with `data.changes` and `partialText`).
---@param session dave.Session
---@param query dave.Query
function M.respond(session, query, err, result)
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
    return M.finish(session, query, "ok", nil, result and result.changes)
  end
  local data = type(err.data) == "table" and err.data or {}
  if err.code == CANCELLED then
    return M.finish(session, query, "cancelled", nil, data.changes)
  end
  if table.concat(query.parts) == "" and type(data.partialText) == "string" then
    table.insert(query.parts, data.partialText)
  end
  M.finish(session, query, "failed", err.message, data.changes)
end

return M
