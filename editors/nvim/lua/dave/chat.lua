--- The chat buffer: one per session. Appends text in place as it streams, keeps the answer
--- region read-only, follows the bottom only where the cursor was there, and shows the
--- query's status in the winbar.
local config = require("dave.config")

local api = vim.api
local uv = vim.uv or vim.loop

local SPINNER = { "⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏" }
local WINDOW_OPTIONS = {
  wrap = true,
  linebreak = true,
  number = false,
  relativenumber = false,
  signcolumn = "no",
  foldcolumn = "0",
  spell = false,
}

--- Sets a window option for this buffer in that window only (`:setlocal`), so it does not
--- follow another buffer into the window.
local function set_local(win, name, value)
  api.nvim_set_option_value(name, value, { scope = "local", win = win })
end

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

---@param session_id string
---@param title string?
---@param on_key table<string, fun(chat: dave.Chat)> actions for the chat's keymaps
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
  }, Chat)
  pcall(api.nvim_buf_set_name, buf, "dave://" .. session_id)
  set_buf_options(buf)
  self:_map_keys(on_key or {})
  api.nvim_create_autocmd("BufWipeout", {
    buffer = buf,
    once = true,
    callback = function()
      self:_stop_spinner()
    end,
  })
  return self
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

local function window_size(position)
  local size = config.options.window.size
  if size >= 1 then
    return math.floor(size)
  end
  local vertical = position == "left" or position == "right"
  local total = vertical and vim.o.columns or vim.o.lines
  return math.max(vertical and 20 or 5, math.floor(total * size))
end

--- Shows the chat in a split; enter: move the cursor there.
function Chat:open(enter)
  local win = self:windows()[1]
  if win then
    if enter then
      api.nvim_set_current_win(win)
    end
    return win
  end
  local position = config.options.window.position
  local size = window_size(position)
  local horizontal = position == "above" or position == "below"
  win = api.nvim_open_win(self.buf, enter or false, {
    split = position,
    win = -1,
    width = not horizontal and size or nil,
    height = horizontal and size or nil,
  })
  for name, value in pairs(WINDOW_OPTIONS) do
    set_local(win, name, value)
  end
  self:_render_winbar()
  local last = api.nvim_buf_line_count(self.buf)
  api.nvim_win_set_cursor(win, { last, 0 })
  return win
end

function Chat:close()
  for _, win in ipairs(self:windows()) do
    if #api.nvim_tabpage_list_wins(0) > 1 then
      api.nvim_win_close(win, false)
    else -- the last window stays; it shows another buffer instead
      local alt = vim.fn.bufnr("#")
      local other = (alt > 0 and alt ~= self.buf and api.nvim_buf_is_valid(alt)) and alt
        or api.nvim_create_buf(true, false)
      api.nvim_win_set_buf(win, other)
    end
  end
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
function Chat:_edit(fn)
  if not self:valid() then
    return
  end
  local buf = self.buf
  local before = api.nvim_buf_line_count(buf)
  local following = {}
  for _, win in ipairs(vim.fn.win_findbuf(buf)) do
    if api.nvim_win_get_cursor(win)[1] >= before then
      table.insert(following, win)
    end
  end
  vim.bo[buf].modifiable = true
  local ok, err = pcall(fn, buf)
  vim.bo[buf].modifiable = false
  if not ok then
    error(err)
  end
  local last = api.nvim_buf_line_count(buf)
  for _, win in ipairs(following) do
    api.nvim_win_set_cursor(win, { last, 0 })
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

--- A line of its own (tool result, error, note), after which streamed text starts afresh.
function Chat:append_note(line)
  self:_edit(function(buf)
    local row, last = last_line(buf)
    local start = last == "" and row or row + 1
    api.nvim_buf_set_lines(buf, start, -1, false, { line, "" })
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
    if is_empty(buf) then
      return api.nvim_buf_set_lines(buf, 0, -1, false, lines)
    end
    if select(2, last_line(buf)) ~= "" then
      table.insert(lines, 1, "")
    end
    api.nvim_buf_set_lines(buf, -1, -1, false, lines)
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
  local mark = self.busy and SPINNER[self.frame] or "●"
  local bar = (" Dave · %s  %s %s"):format(self.title, mark, self.status):gsub("%%", "%%%%")
  for _, win in ipairs(self:windows()) do
    set_local(win, "winbar", bar)
  end
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
        self.frame = self.frame % #SPINNER + 1
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
  self:_render_winbar()
end

--- Wipes the buffer (and its windows).
function Chat:destroy()
  self:_stop_spinner()
  if self:valid() then
    api.nvim_buf_delete(self.buf, { force = true })
  end
end

return Chat
