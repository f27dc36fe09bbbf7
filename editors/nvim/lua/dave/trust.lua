--- Folder trust (`:help dave-trust`). A folder's Claude Code project settings
--- (`.claude/settings.json`, `.claude/settings.local.json`, `.mcp.json`) can run code: hooks,
--- MCP servers, `env`, `apiKeyHelper`. The server loads them only for a folder the user trusts.
--- Before the first query in a folder, this asks the server what the folder would run
--- (`dave/folderTrust`); when it is untrusted and would run something, the user is asked once
--- per folder per Neovim, in the chat as a permission request is (dave.permissions: a block
--- listing every line in full, answered only by a deliberate `ga`/`gd`/`:Dave permissions`,
--- never by a key typed for something else). Yes: `dave/trustFolder`, then the query; no: the
--- query runs without them. `:Dave trust` / `:Dave untrust` set it for the sessions' folder.
local client = require("dave.client")
local config = require("dave.config")

local M = {}

local METHOD_NOT_FOUND = -32601
local NO_SERVER = -32803 -- client.request's code when the server is not running

local checked = {} ---@type table<string, boolean> folders asked about (or nothing to ask) in this Neovim
local waiting = {} ---@type table<string, fun()[]> queries held until the folder's question is answered
local asking = {} ---@type table<string, dave.PermissionRequest> the question shown for a folder
local counter = 0

local function notify(message, level)
  vim.notify(message, level or vim.log.levels.INFO, { title = "dave" })
end

--- The folder the sessions work in, absolute: the running server's, else the one the next
--- server starts in (`init_options.cwd`, else Neovim's cwd).
---@return string
function M.folder()
  local path = vim.fn.fnamemodify(vim.fs.normalize(client.folder() or config.cwd()), ":p")
  return #path > 1 and (path:gsub("/+$", "")) or path
end

local function plural(n, word)
  return ("%d %s%s"):format(n, word, n == 1 and "" or "s")
end

--- `2 hooks, 1 MCP server, env`: what the folder's `wouldRun` lines are, counted by kind.
---@param lines string[]
---@return string
function M.summary(lines)
  local hooks, servers, others, words = 0, 0, 0, {}
  for _, line in ipairs(lines) do
    if vim.startswith(line, "hook ") then
      hooks = hooks + 1
    elseif vim.startswith(line, "MCP server ") then
      servers = servers + 1
    else
      local key = line:match("^([%w_]+):")
      if key and not vim.tbl_contains(words, key) then
        table.insert(words, key)
      elseif not key then
        others = others + 1
      end
    end
  end
  local parts = {}
  if hooks > 0 then
    table.insert(parts, plural(hooks, "hook"))
  end
  if servers > 0 then
    table.insert(parts, plural(servers, "MCP server"))
  end
  vim.list_extend(parts, words)
  if others > 0 then
    table.insert(parts, plural(others, "other setting"))
  end
  return table.concat(parts, ", ")
end

--- Lets the queries held for the folder go on.
local function release(path)
  local held = waiting[path] or {}
  waiting[path], asking[path] = nil, nil
  for _, proceed in ipairs(held) do
    proceed()
  end
end

--- `dave/trustFolder`; done(err_message?, result?) once the server answered.
local function send(path, trusted, done)
  client.request("dave/trustFolder", { path = path, trusted = trusted }, function(err, result)
    if err then
      local message = err.code == METHOD_NOT_FOUND
          and "this dave-lsp does not know folder trust (dave/trustFolder); update it"
        or tostring(err.message)
      return done(message)
    end
    done(nil, type(result) == "table" and result or {})
  end)
end

local QUESTION = "Trust this folder's Claude Code settings?"

--- Asks in the session's chat whether to trust the folder, listing in full what would run.
local function ask(session, path, would_run)
  counter = counter + 1
  local summary = M.summary(would_run)
  local lines = {
    ("**? %s %s**"):format(QUESTION, summary),
    ("`%s` would run, once trusted:"):format(path),
    "```text",
  }
  for _, line in ipairs(would_run) do
    vim.list_extend(lines, vim.split(line, "\n", { plain = true }))
  end
  vim.list_extend(lines, {
    "```",
    "Not trusted, the chat runs with your own settings only (~/.claude); none of these run.",
  })
  local req ---@type dave.PermissionRequest
  req = {
    requestId = ("trust-%d"):format(counter),
    sessionId = session.id,
    toolName = "folderTrust",
    title = session.chat.title,
    chat = session.chat,
    own = {
      lines = lines,
      prompt = ("%s %s (%s): %s"):format(QUESTION, summary, path, table.concat(would_run, "; ")),
      notice = ("%s %s"):format(QUESTION, summary),
      keys = { "trust", "don't trust" },
      choices = {
        { label = "Trust this folder", outcome = "trusted" },
        { label = "Don't trust it", outcome = "not trusted: the chat runs without them (:Dave trust trusts it)" },
      },
      decide = function(index)
        checked[path] = true
        if index ~= 1 then
          return release(path)
        end
        send(path, true, function(err)
          if err then
            session.chat:append_note(("_(the folder could not be trusted: %s)_"):format(err))
          end
          release(path)
        end)
      end,
      dropped = function()
        -- The turn that asked ended (cancelled) before an answer: nothing is decided, the
        -- next query asks again, and queries of other chats held for it go on untrusted.
        if asking[path] == req then
          release(path)
        end
      end,
    },
  }
  asking[path] = req
  session.chat:set_status("waiting for your answer", true)
  require("dave.permissions").ask(req)
end

--- Runs proceed once the folder's trust is settled: at once when it was settled before in
--- this Neovim, the server has no folder trust, or the folder is trusted or would run
--- nothing; else after the user answered the question shown in the session's chat.
---@param session dave.Session
---@param proceed fun()
function M.before_query(session, proceed)
  local path = M.folder()
  if checked[path] or not client.supports("dave/folderTrust") then
    return proceed()
  end
  if waiting[path] then -- another chat asks about this folder now
    return table.insert(waiting[path], proceed)
  end
  waiting[path] = { proceed }
  client.request("dave/folderTrust", { path = path }, function(err, result)
    if err then
      if err.code ~= NO_SERVER then
        checked[path] = true -- asked once; the server keeps an untrusted folder's settings out
      end
      if err.code ~= METHOD_NOT_FOUND and err.code ~= NO_SERVER then
        session.chat:append_note(("_(folder trust could not be checked: %s)_"):format(tostring(err.message)))
      end
      return release(path)
    end
    result = type(result) == "table" and result or {}
    local would_run = vim.tbl_map(tostring, type(result.wouldRun) == "table" and result.wouldRun or {})
    if result.trusted == true or result.runsCode ~= true or #would_run == 0 then
      checked[path] = true
      return release(path)
    end
    ask(session, path, would_run)
  end)
end

--- `:Dave trust` / `:Dave untrust`: trusts the sessions' folder or takes that back
--- (`dave/trustFolder`); a message says what happened. A trust question waiting for the
--- folder is settled by it.
---@param trusted boolean
function M.set(trusted)
  local path = M.folder()
  send(path, trusted, function(err, result)
    if err then
      return notify(("dave: %s %s failed: %s"):format(trusted and "trusting" or "untrusting", path, err),
        vim.log.levels.WARN)
    end
    checked[path] = true
    local shown = type(result.path) == "string" and result.path or path
    local now = result.trusted
    if now == nil then
      now = trusted
    end
    if trusted and now then
      notify(("dave: trusted %s: its Claude Code settings (hooks, MCP servers, env) load from the next query")
        :format(shown))
    elseif trusted then
      notify(("dave: %s is still not trusted (the server said so)"):format(shown), vim.log.levels.WARN)
    elseif now then
      notify(("dave: %s stays trusted: init_options.trustedFolders or a trusted folder above it covers it")
        :format(shown), vim.log.levels.WARN)
    else
      notify(("dave: %s is not trusted any more: its Claude Code settings do not load from the next query")
        :format(shown))
    end
    local req = asking[path]
    if req then
      require("dave.permissions").withdraw(req, now and "trusted (:Dave trust)" or "not trusted (:Dave untrust)")
      release(path)
    end
  end)
end

return M
