--- Chats and their queries: each chat is one server session with its transcript; a query is
--- sent here (queued behind a running one, the transcript along when the server may lack it)
--- and streams its `$/progress` reports into the chat buffer (dave.turn) until it ends in
--- the transcript.
local Chat = require("dave.chat")
local client = require("dave.client")
local turn = require("dave.turn")

local M = {}

local CANCEL_GRACE_MS = 5000

local chats = {} ---@type table<string, dave.Session>
local order = {} ---@type string[] session ids, oldest first
local current = nil ---@type dave.Session?
local counter = 0

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
-- have lost it: `turn.finish` clears `synced`). Otherwise `messages` is empty. A query that was sent
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
      return turn.finish(session, query, "failed", err)
    end
    if query.cancelling then
      return turn.finish(session, query, "cancelled")
    end
    -- The first query in a folder whose settings would run code asks whether to trust it.
    query.held = true
    require("dave.trust").before_query(session, function()
      query.held = false
      if query.done then
        return
      end
      if query.cancelling then
        return turn.finish(session, query, "cancelled")
      end
      chat:set_status("starting", true)
      query.token = client.track(function(value)
        turn.report(session, query, value)
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
        turn.respond(session, query, rpc_err, result)
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
    turn.finish(session, query, "cancelled")
    return true
  end
  session.chat:set_status("cancelling", true)
  if query.token then
    client.notify("window/workDoneProgress/cancel", { token = query.token })
  end
  -- The answer to a cancelled query can be lost; do not wait for it forever.
  vim.defer_fn(function()
    turn.finish(session, query, "cancelled")
  end, CANCEL_GRACE_MS)
  return true
end

--- Drops the chat locally (its buffer too).
function M.forget(session)
  remove(session)
  session.queued = {}
  if session.query then
    turn.finish(session, session.query, "cancelled")
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
          chat:append_note(turn.tool_line(tool))
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
      turn.finish(session, session.query, session.query.cancelling and "cancelled" or "failed", message)
    end
  end
end)

return M
