--- The chat buffer: one per session. Appends text in place as it streams, keeps the answer
--- region read-only, follows the bottom only where the cursor was there, and shows the
--- query's status in the winbar (where and how it is shown: dave.chat_window).
local chat_window = require("dave.chat_window")
local config = require("dave.config")

local api = vim.api
local uv = vim.uv or vim.loop

local THINKING = "> _thinking_"

---@class dave.Chat
---@field session_id string
---@field title string
---@field buf integer
---@field status string
---@field busy boolean
local Chat = {}
Chat.__index = Chat

pcall(vim.treesitter.language.register, "markdown", "dave")

local function set_buf_options(buf)
  local bo = vim.bo[buf]
  bo.buftype = "nofile"
  bo.bufhidden = "hide"
  bo.swapfile = false
  bo.filetype = "dave"
  bo.modifiable = false
  if not pcall(vim.treesitter.start, buf, "markdown") then
    bo.syntax = "markdown"
  end
end

local api_ns = api.nvim_create_namespace("dave_chat_hint")

---@param session_id string
---@param title string?
---@param on_key table<string, fun(chat: dave.Chat, ...)> actions for the chat's keymaps, and
--- `submit(chat, text, range)` for its prompt area
---@return dave.Chat
function Chat.new(session_id, title, on_key)
  local buf = api.nvim_create_buf(false, true)
  local self = setmetatable({
    session_id = session_id,
    title = title or "new chat",
    buf = buf,
    status = "ready",
    busy = false,
    frame = 1,
    on_submit = on_key and on_key.submit or function() end,
  }, Chat)
  self:_name_buffer()
  set_buf_options(buf)
  self.prompt = require("dave.prompt").create(self)
  self:_map_keys(on_key or {})
  self:_show_empty_hint()
  chat_window.track(self)
  api.nvim_create_autocmd("BufWipeout", {
    buffer = buf,
    once = true,
    callback = function()
      self:_stop_spinner()
      chat_window.untrack(self)
    end,
  })
  -- A chat shown in a window (a new or switched chat, :buffer) gets its options and winbar
  -- at once, not at the next status.
  api.nvim_create_autocmd("BufWinEnter", {
    buffer = buf,
    callback = function()
      vim.schedule(function()
        for _, win in ipairs(self:windows()) do
          chat_window.apply_options(win)
        end
        self:_render_winbar()
      end)
    end,
  })
  return self
end

--- The buffer's name: `dave://` and the chat's title (the statusline shows it), unique.
function Chat:_name_buffer()
  local base = "dave://" .. (self.title ~= "new chat" and self.title:gsub("[%c]", " ") or self.session_id)
  local taken = {}
  for _, b in ipairs(api.nvim_list_bufs()) do
    if b ~= self.buf then
      taken[api.nvim_buf_get_name(b)] = true
    end
  end
  local name, n = base, 1
  while taken[name] do
    n = n + 1
    name = ("%s (%d)"):format(base, n)
  end
  pcall(api.nvim_buf_set_name, self.buf, name)
end

local HINT = "Ask in the prompt area below (i goes there; <C-s> sends), or :Dave ask {text}. :help dave"

--- An empty chat says how to ask (virtual text: the buffer stays empty).
function Chat:_show_empty_hint()
  api.nvim_buf_set_extmark(self.buf, api_ns, 0, 0, {
    id = 1,
    virt_text = { { HINT, "Comment" } },
    virt_text_pos = "overlay",
  })
end

function Chat:_map_keys(on_key)
  for action, lhs in pairs(config.options.keymaps) do
    local fn = on_key[action]
    if lhs and fn then
      for _, key in ipairs(type(lhs) == "table" and lhs or { lhs }) do
        vim.keymap.set("n", key, function()
          fn(self)
        end, { buffer = self.buf, nowait = true, desc = "dave: " .. action })
      end
    end
  end
end

function Chat:valid()
  return api.nvim_buf_is_valid(self.buf)
end

--- Windows of the current tab showing this chat.
function Chat:windows()
  if not self:valid() then
    return {}
  end
  local tab = api.nvim_get_current_tabpage()
  return vim.tbl_filter(function(win)
    return api.nvim_win_get_tabpage(win) == tab
  end, vim.fn.win_findbuf(self.buf))
end

--- Shows the chat in a split, with its prompt area under it; enter: move the cursor to the
--- chat (into_prompt: to the prompt area).
---@param enter boolean?
---@param into_prompt boolean?
function Chat:open(enter, into_prompt)
  return chat_window.open(self, enter, into_prompt)
end

--- Closes the chat's windows (and its prompt area); the buffer stays.
function Chat:close()
  chat_window.close(self)
end

function Chat:toggle()
  if #self:windows() > 0 then
    self:close()
  else
    self:open(true)
  end
end

--- Runs fn with the buffer modifiable, then moves the cursor of every window that was at the
--- bottom to the new bottom.
function Chat:_edit(fn, thinking)
  if not self:valid() then
    return
  end
  local buf = self.buf
  if self.in_thinking and not thinking then
    -- What follows the thinking starts a paragraph of its own, outside the fold.
    self.in_thinking = false
    self:_edit(function(b)
      api.nvim_buf_set_lines(b, -1, -1, false, { "", "" })
    end, true)
  end
  local before = api.nvim_buf_line_count(buf)
  local following = {}
  for _, win in ipairs(vim.fn.win_findbuf(buf)) do
    if api.nvim_win_get_cursor(win)[1] >= before then
      table.insert(following, win)
    end
  end
  api.nvim_buf_del_extmark(buf, api_ns, 1) -- the empty chat's hint
  vim.bo[buf].modifiable = true
  local ok, err = pcall(fn, buf)
  vim.bo[buf].modifiable = false
  if not ok then
    error(err)
  end
  local last = api.nvim_buf_line_count(buf)
  -- The end of the last line, so a long wrapped paragraph scrolls with its newest words.
  local width = #api.nvim_buf_get_lines(buf, last - 1, last, true)[1]
  for _, win in ipairs(following) do
    api.nvim_win_set_cursor(win, { last, math.max(0, width - 1) })
  end
end

local function last_line(buf)
  local row = api.nvim_buf_line_count(buf) - 1
  return row, api.nvim_buf_get_lines(buf, row, row + 1, true)[1]
end

local function is_empty(buf)
  return api.nvim_buf_line_count(buf) == 1 and select(2, last_line(buf)) == ""
end

--- Appends streamed text at the very end, in place.
---@param text string
function Chat:append_text(text)
  if text == "" then
    return
  end
  self:_edit(function(buf)
    local row, line = last_line(buf)
    api.nvim_buf_set_text(buf, row, #line, row, #line, vim.split(text, "\n", { plain = true }))
  end)
end

--- Appends streamed thinking: a `> ` block under a `> _thinking_` line, shown folded.
---@param text string
function Chat:append_thinking(text)
  if text == "" then
    return
  end
  self:_edit(function(buf)
    local row, line = last_line(buf)
    if not self.in_thinking then
      local start = line == "" and row or row + 1
      api.nvim_buf_set_lines(buf, start, -1, false, { THINKING, "> " })
      row, line = last_line(buf)
      self.in_thinking = true
    end
    local pieces = vim.split(text, "\n", { plain = true })
    for i = 2, #pieces do
      pieces[i] = "> " .. pieces[i]
    end
    api.nvim_buf_set_text(buf, row, #line, row, #line, pieces)
  end, true)
end

--- 'foldexpr' of the chat window: a thinking block is a fold.
function Chat.fold(lnum)
  local line = vim.fn.getline(lnum)
  if line == THINKING then
    return ">1"
  end
  return line:sub(1, 1) == ">" and "=" or "0"
end

--- 'foldtext' of the chat window.
function Chat.foldtext()
  return ("> thinking (%d lines; zo opens)"):format(vim.v.foldend - vim.v.foldstart)
end

--- A line of its own (tool result, error, note), after which streamed text starts afresh.
function Chat:append_note(line)
  self:_edit(function(buf)
    local row, last = last_line(buf)
    local start = last == "" and row or row + 1
    api.nvim_buf_set_lines(buf, start, -1, false, { line, "" })
  end)
end

local BLOCKS = api.nvim_create_namespace("dave_chat_blocks")
local TURNS = api.nvim_create_namespace("dave_chat_turns")

--- Appends a block (a permission request) and, under it, a line of hints that
--- set_block_hint replaces later; returns the block's handle.
---@param lines string[]
---@param hint string
---@return integer
function Chat:add_block(lines, hint)
  local id
  self:_edit(function(buf)
    local row, last = last_line(buf)
    local start = last == "" and row or row + 1
    local all = vim.list_extend(vim.deepcopy(lines), { hint, "" })
    api.nvim_buf_set_lines(buf, start, -1, false, all)
    id = api.nvim_buf_set_extmark(buf, BLOCKS, start + #lines, 0, {})
  end)
  return id
end

--- Replaces the hint line of a block (how the request ended).
---@param id integer
---@param text string
function Chat:set_block_hint(id, text)
  if not self:valid() then
    return
  end
  local pos = api.nvim_buf_get_extmark_by_id(self.buf, BLOCKS, id, {})
  if not pos[1] then
    return
  end
  self:_edit(function(buf)
    api.nvim_buf_set_lines(buf, pos[1], pos[1] + 1, false, { text })
  end)
end

--- Starts a turn: the user's prompt (and a note under it), then the header under which the
--- answer streams.
---@param prompt string
---@param note string?
function Chat:begin_turn(prompt, note)
  local lines = { "## You", "" }
  vim.list_extend(lines, vim.split(prompt, "\n", { plain = true }))
  if note then
    vim.list_extend(lines, { "", note })
  end
  vim.list_extend(lines, { "", "## Dave", "" })
  self:_edit(function(buf)
    local row = is_empty(buf) and 0 or api.nvim_buf_line_count(buf)
    if row > 0 and select(2, last_line(buf)) ~= "" then
      table.insert(lines, 1, "")
      row = row + 1
    end
    api.nvim_buf_set_lines(buf, row == 0 and 0 or -1, -1, false, lines)
    -- Where each prompt starts, for `:Dave rewind` (dave.rewind).
    self.prompts = self.prompts or {}
    table.insert(self.prompts, { text = prompt, mark = api.nvim_buf_set_extmark(buf, TURNS, row, 0, {}) })
  end)
end

--- The whole buffer as text (for tests and `:Dave` users who want to copy it).
function Chat:text()
  if not self:valid() then
    return ""
  end
  return table.concat(api.nvim_buf_get_lines(self.buf, 0, -1, true), "\n")
end

function Chat:_render_winbar()
  chat_window.render_winbar(self)
end

function Chat:_stop_spinner()
  if self.timer then
    self.timer:stop()
    self.timer:close()
    self.timer = nil
  end
end

--- Sets the winbar status; busy: spin until a status that is not busy arrives.
---@param status string
---@param busy boolean
function Chat:set_status(status, busy)
  self.status = status:gsub("\n.*", "")
  self.busy = busy
  if busy and not self.timer then
    self.timer = uv.new_timer()
    self.timer:start(
      100,
      100,
      vim.schedule_wrap(function()
        if not self.busy then
          return
        end
        self.frame = self.frame % #chat_window.SPINNER + 1
        self:_render_winbar()
      end)
    )
  elseif not busy then
    self:_stop_spinner()
  end
  self:_render_winbar()
end

function Chat:set_title(title)
  self.title = title
  self:_name_buffer()
  self:_render_winbar()
end

--- Wipes the buffer (and its windows).
function Chat:destroy()
  self:_stop_spinner()
  if self.prompt and api.nvim_buf_is_valid(self.prompt) then
    api.nvim_buf_delete(self.prompt, { force = true })
  end
  if self:valid() then
    api.nvim_buf_delete(self.buf, { force = true })
  end
end

return Chat
