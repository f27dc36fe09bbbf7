--- dave.nvim: chat with dave-lsp (Claude Code and other models) from Neovim.
--- `require("dave").setup(opts)` sets the options; the functions here back `:Dave`.
local config = require("dave.config")
local sessions = require("dave.sessions")
require("dave.context") -- from now on, it knows which window a chat is opened from

local M = {}

local function notify(message, level)
  vim.notify(message, level or vim.log.levels.INFO, { title = "dave" })
end

--- Sets the options (see `:help dave-config`). Wrong options are reported, not raised.
---@param opts table?
function M.setup(opts)
  -- A plugin manager may add this plugin to 'runtimepath' after plugin/ files were sourced.
  if not vim.g.loaded_dave then
    vim.cmd.runtime("plugin/dave.lua")
  end
  local ok, err = pcall(config.setup, opts)
  if not ok then
    notify("dave: invalid setup option: " .. tostring(err), vim.log.levels.ERROR)
  end
end

--- Shows the current chat, or hides it when it is shown.
function M.toggle()
  sessions.current().chat:toggle()
end

--- The lines of a range as text pasted into a prompt (when `context.active_file` is off).
local function pasted(range)
  local lines = vim.api.nvim_buf_get_lines(range.buf, range.line1 - 1, range.line2, false)
  local name = vim.fn.fnamemodify(vim.api.nvim_buf_get_name(range.buf), ":~:.")
  return ("%s, lines %d-%d:\n```%s\n%s\n```"):format(
    name ~= "" and name or "[No Name]",
    range.line1,
    range.line2,
    vim.bo[range.buf].filetype,
    table.concat(lines, "\n")
  )
end

--- Sends text in the current chat with the editor's context (`:help dave-context`): the file of
--- the window the chat was opened from, with a range its selection, and the files the text
--- mentions (`@path#L5-10`). With `context.active_file` off, a range's lines are pasted into
--- the text instead.
---@param text string
---@param range {buf: integer, line1: integer, line2: integer}?
function M.ask(text, range)
  text = vim.trim(text or "")
  if text:sub(1, 1) == "/" then -- a slash command goes to the CLI as typed, without context
    local session = sessions.current()
    session.chat:open(false)
    return sessions.ask(session, text, {})
  end
  if text == "" then -- a selection without a question: ask for the question first
    return M.prompt(range)
  end
  local context = require("dave.context")
  local with_file = require("dave.config").options.context.active_file
  if range and not (with_file and context.active_file(range.buf)) then -- no file: paste its lines
    text = text .. "\n\n" .. pasted(range)
    range = nil
  end
  local ctx = context.for_prompt(text, range)
  local images, image_paths = context.images(text)
  local note
  local file = ctx and ctx.activeFile
  if file and file.selection then
    local first, last = file.selection.start.line + 1, file.selection["end"].line + 1
    note = ("_with %s, %s_"):format(
      require("dave.config").relative(file.path),
      first == last and ("line %d"):format(first) or ("lines %d-%d"):format(first, last)
    )
  end
  if image_paths then
    -- The image goes as an attachment only: Claude Code would attach an `@file` it can read
    -- a second time, so the prompt names it without the `@`.
    for _, word in ipairs(context.image_words(text)) do
      text = text:gsub("(%s)@" .. vim.pesc(word), "%1" .. word:gsub("%%", "%%%%"))
      text = text:gsub("^@" .. vim.pesc(word), (word:gsub("%%", "%%%%")))
    end
    local names = vim.tbl_map(require("dave.config").relative, image_paths)
    local line = ("_with image%s %s_"):format(#names == 1 and "" or "s", table.concat(names, ", "))
    note = note and (note .. " " .. line) or line
  end
  local session = sessions.current()
  session.chat:open(false)
  sessions.ask(session, text, { context = ctx, note = note, attachments = images })
end

--- Goes to the current chat's prompt area (`:help dave-prompt`), in Insert mode; with a range,
--- that selection goes along with the prompt sent from there.
---@param range {buf: integer, line1: integer, line2: integer}?
function M.prompt(range)
  require("dave.context").fetch_commands() -- for `/` completion
  local chat = sessions.current().chat
  if range then
    chat.prompt_range = range
  end
  chat:open(true, true)
  vim.cmd.startinsert()
end

--- Answers the oldest permission request of the current chat (else of any chat) with
--- vim.ui.select (`:Dave permissions`).
function M.permissions()
  require("dave.permissions").pick()
end

function M.cancel()
  local session = sessions.peek()
  if not (session and sessions.cancel(session)) then
    notify("dave: nothing to cancel in this chat")
  end
end

--- Removes a prompt queued in the current chat (default: the last one queued) before it is sent.
---@param index integer?
function M.unqueue(index)
  local session = sessions.peek()
  local removed = session and sessions.unqueue(session, index)
  if not removed then
    notify(index and ("dave: no queued prompt %d in this chat"):format(index)
      or "dave: no prompt is queued in this chat")
  end
end

M.MODES = { "default", "acceptEdits", "plan", "bypassPermissions" }

--- Applies a setting to the current chat's session: `dave/setModel` / `dave/setPermissionMode`;
--- a chat the server does not know yet is created with it (`dave/newSession`).
local function configure(method, key, value, param)
  local session = sessions.current()
  local function done(err)
    if err then
      return notify(("dave: could not set the %s: %s"):format(key, tostring(err.message)), vim.log.levels.WARN)
    end
    session[key] = value
    session.chat:append_note(("_%s: %s_"):format(key, value))
  end
  local client = require("dave.client")
  client.request(method, { sessionId = session.id, [param] = value }, function(err)
    if err and err.code == -32602 and tostring(err.message):find("no session", 1, true) then
      local field = key == "mode" and "permissionMode" or "model"
      return client.request("dave/newSession", { sessionId = session.id, [field] = value }, done)
    end
    done(err)
  end)
end

--- Sets the model of the current chat (`:Dave model {name}`).
---@param name string
function M.model(name)
  if name == "" then
    local session = sessions.peek()
    return notify("dave: model: " .. tostring(session and session.model or "the server's default"))
  end
  configure("dave/setModel", "model", name, "model")
end

--- Sets the permission mode of the current chat (`:Dave mode {mode}`).
---@param mode string
function M.mode(mode)
  if mode == "" then
    local session = sessions.peek()
    return notify("dave: mode: " .. tostring(session and session.mode or "the server's default"))
  end
  if not vim.tbl_contains(M.MODES, mode) then
    local known = table.concat(M.MODES, ", ")
    return notify(("dave: unknown mode %q; one of: %s"):format(mode, known), vim.log.levels.ERROR)
  end
  configure("dave/setPermissionMode", "mode", mode, "mode")
end

local function tokens(n)
  if n >= 1000000 then
    return (("%.1fM"):format(n / 1000000):gsub("%.0M$", "M"))
  elseif n >= 1000 then
    return ("%dk"):format(math.floor(n / 1000 + 0.5))
  end
  return tostring(math.floor(n))
end

--- A line for a statusline: the current chat's state, its context meter (the last turn's
--- context size over the model's window, e.g. `12k/200k`), its cost so far and queued prompts.
--- "" when there is no chat.
---@return string
function M.status()
  local session = sessions.peek()
  if not session then
    return ""
  end
  local parts = { "Dave: " .. tostring(session.chat.status) }
  if session.mode and session.mode ~= "default" then
    table.insert(parts, session.mode)
  end
  local usage = session.usage
  if type(usage) == "table" and type(usage.contextTokens) == "number" then
    local meter = tokens(usage.contextTokens)
    if type(usage.contextWindow) == "number" and usage.contextWindow > 0 then
      meter = ("%s/%s"):format(meter, tokens(usage.contextWindow))
    end
    table.insert(parts, meter)
  end
  if type(session.cost) == "number" then
    table.insert(parts, ("$%.2f"):format(session.cost))
  end
  if #session.queued > 0 then
    table.insert(parts, ("%d queued"):format(#session.queued))
  end
  return table.concat(parts, " · ")
end

--- Starts a new chat (a new session) and shows it.
function M.new()
  local previous = sessions.peek()
  local wins = previous and previous.chat:windows() or {}
  local session = sessions.new()
  if wins[1] then
    vim.api.nvim_win_set_buf(wins[1], session.chat.buf)
  end
  session.chat:open(true)
end

--- Deletes the current chat's session on the server (ending its backend process) and the chat,
--- once the user confirmed it (force: without asking).
---@param force boolean?
function M.delete(force)
  local session = sessions.peek()
  if not session then
    return notify("dave: no chat to delete")
  end
  local function really()
    -- The chat's windows show the newest chat left, if any (else they close with the buffer).
    local others = vim.tbl_filter(function(s)
      return s ~= session
    end, sessions.list())
    local next_one = others[#others]
    if next_one then
      for _, win in ipairs(session.chat:windows()) do
        vim.api.nvim_win_set_buf(win, next_one.chat.buf)
      end
    end
    sessions.delete(session, function(deleted, err)
      if err then
        notify(err, vim.log.levels.WARN)
      else
        notify(("dave: deleted %s%s"):format(session.chat.title, deleted and "" or " (the server did not know it)"))
      end
    end)
  end
  if force then
    return really()
  end
  vim.ui.select({ "Delete", "Keep" }, {
    prompt = ("Delete the chat %q and end its session?"):format(session.chat.title),
    kind = "dave.confirm",
  }, function(choice)
    if choice == "Delete" then
      really()
    end
  end)
end

--- Picks a chat with vim.ui.select: this Neovim's chats and, where the server lists them
--- (`dave/listSessions`), its other sessions, remembered ones included, newest activity
--- first, the current chat marked. A session this Neovim has no chat for opens with its
--- conversation (`dave/history`).
function M.sessions()
  require("dave.session_picker").pick()
end

--- Lists the current chat's "allow always" rules; the one picked is removed.
function M.rules()
  local session = sessions.peek()
  if not session then
    return notify("dave: no chat, so no rules")
  end
  require("dave.rules").manage(session)
end

--- Accepts the change under review (the proposal buffer's text when you edited it);
--- always: "allow always" (adds the request's rule too).
---@param always boolean?
function M.accept(always)
  require("dave.permissions").accept(nil, always)
end

--- Rejects the change under review, with an optional reason the model sees.
function M.reject()
  require("dave.permissions").reject(nil)
end

--- Opens the diff tab of the change that waits for review.
function M.review()
  require("dave.permissions").review()
end

--- Lists a turn's changed files (default: the last turn that changed files) in the quickfix
--- list and shows the first one's diff.
---@param turn integer?
function M.changes(turn)
  local session = sessions.peek()
  if not session then
    return notify("dave: no chat, so no changes")
  end
  require("dave.changes").show(session, turn)
end

--- Reverts the last turn that changed files: all of it, or only the given files.
---@param files string[]?
function M.undo(files)
  local session = sessions.peek()
  if not session then
    return notify("dave: no chat, so nothing to undo")
  end
  require("dave.changes").undo(session, files or {})
end

--- Trusts the chat's folder (its Claude Code settings load from the next query), or takes that
--- back (`:Dave trust`, `:Dave untrust`; `:help dave-trust`).
---@param trusted boolean
function M.trust(trusted)
  require("dave.trust").set(trusted)
end

--- Stops the server; the next query starts it again and resends each chat's transcript.
function M.restart()
  require("dave.client").stop("dave: the server was restarted")
  notify("dave: server stopped; the next query starts it again")
end

--- Keys in a chat buffer act on that chat.
local function in_chat(fn)
  return function(chat)
    local session = sessions.get(chat.session_id)
    if session then
      sessions.select(session)
      fn()
    end
  end
end

local function answer_with(action)
  return function(chat)
    require("dave.permissions").act(chat.session_id, action)
  end
end

sessions.set_actions({
  ask = in_chat(M.prompt),
  cancel = in_chat(M.cancel),
  allow = answer_with("allow"),
  allow_always = answer_with("allow_always"),
  deny = answer_with("deny"),
  permissions = answer_with("permissions"),
  review = answer_with("review"),
  submit = function(chat, text, range)
    local session = sessions.get(chat.session_id)
    if not session then
      error("this chat was deleted")
    end
    sessions.select(session)
    M.ask(text, range)
  end,
  close = function(chat)
    chat:close()
  end,
})

return M
