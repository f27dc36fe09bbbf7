--- `:Dave sessions`: this Neovim's chats and the server's other sessions (remembered ones
--- included) in vim.ui.select (kind `dave.session`), each with its state, turns and last
--- activity; the one picked is shown, a session without a chat here opening with its
--- conversation from the server.
local sessions = require("dave.sessions")

local M = {}

local function notify(message, level)
  vim.notify(message, level or vim.log.levels.INFO, { title = "dave" })
end

local function switch_to(session)
  local previous = sessions.peek()
  local wins = previous and previous.chat:windows() or {}
  sessions.select(session)
  if wins[1] then
    vim.api.nvim_win_set_buf(wins[1], session.chat.buf)
  end
  session.chat:open(true)
end

--- How long ago an ISO 8601 UTC time was: `5 min ago`; nil when it is no such time.
local function ago(iso)
  local y, mo, d, h, mi, sec = tostring(iso or ""):match("^(%d+)-(%d+)-(%d+)[T ](%d+):(%d+):(%d+)")
  if not y then
    return nil
  end
  local now = os.time()
  local offset = now - os.time(os.date("!*t", now)) ---@diagnostic disable-line: param-type-mismatch
  local t = os.time({ year = y, month = mo, day = d, hour = h, min = mi, sec = sec }) + offset
  local s = math.max(0, now - t)
  if s < 60 then
    return "just now"
  elseif s < 3600 then
    return ("%d min ago"):format(math.floor(s / 60))
  elseif s < 86400 then
    return ("%d h ago"):format(math.floor(s / 3600))
  end
  return ("%d days ago"):format(math.floor(s / 86400))
end

--- The server's words for a session's state, as the list shows them.
local STATES = { idle = "idle", working = "working", needsInput = "waits for you", evicted = "not running" }

local function pick(items)
  if #items == 0 then
    return notify("dave: no sessions yet")
  end
  local now = sessions.peek()
  vim.ui.select(items, {
    prompt = "Dave sessions",
    kind = "dave.session",
    format_item = function(item)
      local parts = { STATES[item.state] or tostring(item.state) }
      if type(item.turns) == "number" then
        table.insert(parts, ("%d turn%s"):format(item.turns, item.turns == 1 and "" or "s"))
      end
      local when = ago(item.lastActiveAt)
      if when then
        table.insert(parts, "last active " .. when)
      end
      local mark = now and now.id == item.id and "● " or "  "
      return ("%s%s (%s)"):format(mark, item.title, table.concat(parts, ", "))
    end,
  }, function(item)
    if not item then
      return
    end
    local session = sessions.get(item.id)
    if session then
      return switch_to(session)
    end
    session = sessions.new(item.id, item.title)
    switch_to(session)
    sessions.show_history(session)
  end)
end

--- Picks a chat with vim.ui.select: this Neovim's chats and, where the server lists them
--- (`dave/listSessions`), its other sessions, remembered ones included, newest activity
--- first, the current chat marked. A session this Neovim has no chat for opens with its
--- conversation (`dave/history`).
function M.pick()
  local client = require("dave.client")
  local mine = {}
  for _, session in ipairs(sessions.list()) do
    mine[session.id] = {
      id = session.id,
      title = session.chat.title,
      state = session.query and "working" or "open",
    }
  end
  local function local_items()
    local items = vim.tbl_values(mine)
    table.sort(items, function(a, b)
      return a.id > b.id
    end)
    return items
  end
  client.with_client(function(c)
    if not c or not client.supports("dave/listSessions") then
      return pick(local_items())
    end
    client.request("dave/listSessions", vim.empty_dict(), function(err, result)
      if err then
        notify("dave: the server did not list its sessions: " .. tostring(err.message), vim.log.levels.WARN)
        return pick(local_items())
      end
      local items = {}
      for _, s in ipairs(result and result.sessions or {}) do
        local chat = mine[s.sessionId]
        local title = type(s.title) == "string" and s.title ~= "" and s.title or s.sessionId
        table.insert(items, {
          id = s.sessionId,
          title = chat and chat.title or title,
          state = s.state,
          turns = s.turns,
          lastActiveAt = s.lastActiveAt,
        })
        mine[s.sessionId] = nil
      end
      -- Chats the server does not know yet (never asked) come first: they are the newest.
      pick(vim.list_extend(local_items(), items))
    end)
  end)
end

return M
