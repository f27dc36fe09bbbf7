--- `:Dave rewind [turn]` and `:Dave fork [turn]` (issue 27). Rewind (`dave/rewind`) takes
--- the current chat back to the moment before turn `turn` began: the model forgets that turn
--- and those after it, their prompts and answers leave the chat buffer and the transcript, and
--- the files they changed are restored (`:Dave rewind!`: the conversation only), a file
--- changed since being kept and named. Fork (`dave/fork`) opens a new chat holding turns
--- 1..`turn` (as the chat forked shows them); the chat forked stays as it was. The rewound
--- prompt waits in the prompt area, to edit and send again.
--- Without a turn, vim.ui.select (kind `dave.turn`) picks one of the chat's turns by prompt.
---
--- Turns are numbered as the server numbers them: from 1, a prompt that failed or was
--- cancelled without changing a file making none; where the server lists more turns than the
--- chat shows (a chat resumed without its start), the chat's are its last ones.
local client = require("dave.client")
local config = require("dave.config")
local sessions = require("dave.sessions")

local api = vim.api
local M = {}

local TURNS = api.nvim_create_namespace("dave_chat_turns")

local function notify(message, level)
  vim.notify(message, level or vim.log.levels.INFO, { title = "dave" })
end

--- Whether the chat lines of one prompt's turn make a turn on the server: not when it failed
--- or was cancelled, unless it changed files (dave.turn's notes say which).
local function counted(lines)
  local ended, changed = false, false
  for _, line in ipairs(lines) do
    if line:match("^%*%*Error:%*%*") or line == "_(cancelled)_" then
      ended = true
    elseif line:match("^%d+ files? changed %(:Dave changes") then
      changed = true
    end
  end
  return changed or not ended
end

--- The chat's prompts, oldest first: {text, mark, row, turn (nil: it made no turn)}.
---@param chat dave.Chat
---@param server_turns integer? the session's turns as the server counts them
function M.prompts(chat, server_turns)
  local out = {}
  for _, p in ipairs(chat.prompts or {}) do
    local pos = api.nvim_buf_get_extmark_by_id(chat.buf, TURNS, p.mark, {})
    if pos[1] then
      table.insert(out, { text = p.text, mark = p.mark, row = pos[1] })
    end
  end
  local made = 0
  for i, p in ipairs(out) do
    local stop = out[i + 1] and out[i + 1].row or -1
    if counted(api.nvim_buf_get_lines(chat.buf, p.row, stop, false)) then
      made = made + 1
      p.turn = made
    end
  end
  local offset = server_turns and math.max(0, server_turns - made) or 0
  for _, p in ipairs(out) do
    p.turn = p.turn and p.turn + offset
  end
  return out
end

--- The first prompt of the chat that turn `turn` (and those after it) started from: the one
--- after turn `turn - 1`; nil when the chat shows none of it.
local function first_dropped(prompts, turn)
  for i, p in ipairs(prompts) do
    if p.turn and p.turn >= turn then
      local start = i
      while start > 1 and not prompts[start - 1].turn do
        start = start - 1
      end
      return start
    end
  end
end

--- Takes prompts[index] and everything after it off the chat buffer and its transcript.
local function cut(session, prompts, index)
  local chat, p = session.chat, prompts[index]
  chat:_edit(function(buf)
    api.nvim_buf_set_lines(buf, p.row, -1, false, { "" })
  end)
  for i = index, #prompts do
    pcall(api.nvim_buf_del_extmark, chat.buf, TURNS, prompts[i].mark)
  end
  chat.prompts = vim.tbl_map(function(q)
    return { text = q.text, mark = q.mark }
  end, vim.list_slice(prompts, 1, index - 1))
  -- The transcript holds a user message per prompt of the chat, in order.
  local users, transcript = 0, {}
  for _, m in ipairs(session.transcript) do
    if m.role == "user" then
      users = users + 1
    end
    if users >= index then
      break
    end
    table.insert(transcript, m)
  end
  session.transcript = transcript
  session.changes = nil
end

--- The fork's chat starts as the chat forked, up to the end of turn `turn`: its lines,
--- prompts and transcript (the server holds that conversation for the fork).
local function copy(session, fork, prompts, turn)
  local stop = first_dropped(prompts, turn + 1)
  local row = stop and prompts[stop].row or -1
  local lines = api.nvim_buf_get_lines(session.chat.buf, 0, row, false)
  local kept = vim.list_slice(prompts, 1, stop and stop - 1 or #prompts)
  fork.chat:_edit(function(buf)
    api.nvim_buf_set_lines(buf, 0, -1, false, lines)
    fork.chat.prompts = vim.tbl_map(function(p)
      return { text = p.text, mark = api.nvim_buf_set_extmark(buf, TURNS, p.row, 0, {}) }
    end, kept)
  end)
  local users = 0
  for _, m in ipairs(session.transcript) do
    users = users + (m.role == "user" and 1 or 0)
    if users > #kept then
      break
    end
    table.insert(fork.transcript, m)
  end
  fork.synced = session.synced
end

--- Runs fn(session, prompts) for the current chat once the server is up, has the method and
--- has said how many turns the session has; says why not otherwise.
local function with_turns(method, what, fn)
  local session = sessions.peek()
  if not session then
    return notify(("dave: no chat to %s"):format(what), vim.log.levels.WARN)
  end
  if session.query then
    return notify(("dave: a turn is running in %s; :Dave cancel it before you %s"):format(session.chat.title, what),
      vim.log.levels.WARN)
  end
  require("dave.changes").with_method(method, function()
    if not client.supports("dave/listSessions") then
      return fn(session, M.prompts(session.chat))
    end
    client.request("dave/listSessions", vim.empty_dict(), function(list_err, result)
      local server_turns
      for _, s in ipairs(not list_err and type(result) == "table" and result.sessions or {}) do
        if s.sessionId == session.id and type(s.turns) == "number" then
          server_turns = s.turns
        end
      end
      fn(session, M.prompts(session.chat, server_turns))
    end)
  end)
end

--- Picks a turn with vim.ui.select when none was given, then calls fn(turn).
local function pick_turn(prompts, turn, title, fn)
  if turn then
    return fn(turn)
  end
  local turns = vim.tbl_filter(function(p)
    return p.turn ~= nil
  end, prompts)
  if #turns == 0 then
    return notify("dave: this chat has no turns yet", vim.log.levels.WARN)
  end
  vim.ui.select(turns, {
    prompt = title,
    kind = "dave.turn",
    format_item = function(p)
      local line = vim.trim(p.text:match("[^\n]*"))
      return ("%d: %s"):format(p.turn, #line > 60 and (vim.fn.strcharpart(line, 0, 59) .. "…") or line)
    end,
  }, function(choice)
    if choice then
      fn(choice.turn)
    end
  end)
end

--- `:Dave rewind [turn]` (files: false for `:Dave rewind!`, the conversation only).
---@param turn integer?
---@param files boolean
function M.rewind(turn, files)
  with_turns("dave/rewind", "rewind", function(session, prompts)
    pick_turn(prompts, turn, "Rewind to before which turn?", function(chosen)
      local params = { sessionId = session.id, turn = chosen, files = files }
      client.request("dave/rewind", params, function(err, result)
        if err then
          return notify("dave: could not rewind: " .. tostring(err.message):gsub("\n.*", ""), vim.log.levels.WARN)
        end
        local index = first_dropped(prompts, chosen)
        if index then
          cut(session, prompts, index)
          -- As in Claude Code: the rewound prompt waits in the prompt area, unless you typed there.
          local area = session.chat.prompt
          local valid = area and api.nvim_buf_is_valid(area)
          if valid and table.concat(api.nvim_buf_get_lines(area, 0, -1, false)) == "" then
            local again = vim.tbl_filter(function(p)
              return p.turn == chosen
            end, prompts)[1] or prompts[index]
            api.nvim_buf_set_lines(area, 0, -1, false, vim.split(again.text, "\n", { plain = true }))
          end
        end
        pcall(vim.cmd, "silent! checktime")
        local chat = session.chat
        local only = files and "" or " (the conversation only; files left as they are)"
        chat:append_note(("↶ rewound to before turn %d%s"):format(chosen, only))
        local restored = type(result) == "table" and type(result.restored) == "table" and result.restored or {}
        local conflicts = type(result) == "table" and type(result.conflicts) == "table" and result.conflicts or {}
        if #restored > 0 then
          chat:append_note("↶ restored " .. table.concat(vim.tbl_map(function(path)
            return config.relative(tostring(path))
          end, restored), ", "))
        end
        for _, conflict in ipairs(conflicts) do
          local name = config.relative(tostring(conflict.path))
          local line = ("%s kept, not restored: %s"):format(name, tostring(conflict.message))
          chat:append_note("✗ " .. line)
          notify("dave: " .. line, vim.log.levels.WARN)
        end
        chat:set_status("ready", false)
        notify(("dave: rewound %s to before turn %d"):format(chat.title, chosen))
      end)
    end)
  end)
end

--- `:Dave fork [turn]`: a new chat holding turns 1..turn (all by default: every turn).
---@param turn integer?
function M.fork(turn)
  with_turns("dave/fork", "fork", function(session, prompts)
    pick_turn(prompts, turn, "Fork with the turns up to which one?", function(chosen)
      client.request("dave/fork", { sessionId = session.id, turn = chosen }, function(err, result)
        local id = not err and type(result) == "table" and result.sessionId
        if type(id) ~= "string" or id == "" then
          local why = tostring(err and err.message or "the server named no session"):gsub("\n.*", "")
          return notify("dave: could not fork: " .. why, vim.log.levels.WARN)
        end
        local wins = session.chat:windows()
        local fork = sessions.new(id, session.chat.title .. " (fork)")
        if wins[1] then
          api.nvim_win_set_buf(wins[1], fork.chat.buf)
        end
        fork.chat:open(true)
        copy(session, fork, prompts, chosen)
        fork.chat:append_note(("_(forked from %s at turn %d; that chat goes on as it was: :Dave sessions)_"):format(
          session.chat.title, chosen))
        notify(("dave: forked %s at turn %d"):format(session.chat.title, chosen))
      end)
    end)
  end)
end

return M
