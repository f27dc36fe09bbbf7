--- The prompt area of a chat: an editable buffer in a window under the chat window, where a
--- prompt is written (several lines, while an answer streams) and sent with `<C-s>` (or `<CR>`
--- in Normal mode). A prompt sent while the chat's turn runs is queued (sessions.lua); the
--- area is cleared only once its text was handed over, so nothing typed is lost.
local config = require("dave.config")

local api = vim.api

local M = {}

--- The options of a window of text to read and write (the chat's and the prompt area's).
M.TEXT_WINDOW = {
  wrap = true,
  linebreak = true,
  number = false,
  relativenumber = false,
  signcolumn = "no",
  foldcolumn = "0",
  spell = false,
}

local WINDOW_OPTIONS = vim.tbl_extend("force", M.TEXT_WINDOW, { winfixheight = true })

pcall(vim.treesitter.language.register, "markdown", "dave_prompt")

local function set_local(win, name, value)
  api.nvim_set_option_value(name, value, { scope = "local", win = win })
end

local function notify(message, level)
  vim.notify(message, level or vim.log.levels.INFO, { title = "dave" })
end

--- The text of the prompt buffer (lines joined), trimmed of blank lines around it.
local function text_of(buf)
  local lines = api.nvim_buf_get_lines(buf, 0, -1, true)
  return vim.trim(table.concat(lines, "\n"))
end

--- Sends what the prompt area holds: on_submit(text, range); the area is emptied after.
---@param chat dave.Chat
function M.submit(chat)
  local buf = chat.prompt
  if not (buf and api.nvim_buf_is_valid(buf)) then
    return
  end
  local text = text_of(buf)
  if text == "" then
    return notify("dave: the prompt is empty: write your question first")
  end
  local range = chat.prompt_range
  local ok, err = pcall(chat.on_submit, chat, text, range)
  if not ok then -- keep the text: the user can send it again
    return notify("dave: the prompt was not sent: " .. tostring(err), vim.log.levels.ERROR)
  end
  chat.prompt_range = nil
  api.nvim_buf_set_lines(buf, 0, -1, true, { "" })
  M.render(chat)
end

--- The prompt buffer of a chat, with its keys.
---@param chat dave.Chat
---@return integer
function M.create(chat)
  local buf = api.nvim_create_buf(false, true)
  local bo = vim.bo[buf]
  bo.buftype = "nofile"
  bo.bufhidden = "hide"
  bo.swapfile = false
  bo.filetype = "dave_prompt"
  bo.omnifunc = "v:lua.require'dave.prompt'.omnifunc"
  pcall(api.nvim_buf_set_name, buf, "dave://prompt/" .. chat.session_id)
  if not pcall(vim.treesitter.start, buf, "markdown") then
    bo.syntax = "markdown"
  end
  vim.b[buf].dave_prompt = chat.session_id
  local keys = config.options.prompt.keymaps
  local function send()
    M.submit(chat)
  end
  if keys.submit then
    vim.keymap.set({ "n", "i" }, keys.submit, send, { buffer = buf, desc = "dave: send the prompt" })
  end
  if keys.submit_normal then
    vim.keymap.set("n", keys.submit_normal, send, { buffer = buf, desc = "dave: send the prompt" })
  end
  return buf
end

--- Windows of the current tab showing a prompt area (of any chat).
local function prompt_windows()
  return vim.tbl_filter(function(win)
    return vim.b[api.nvim_win_get_buf(win)].dave_prompt ~= nil
  end, api.nvim_tabpage_list_wins(0))
end

--- The hint in the prompt window's winbar: how to send, and a selection that goes along.
local function hint(chat)
  local keys = config.options.prompt.keymaps
  local how = {}
  if keys.submit then
    table.insert(how, keys.submit)
  end
  if keys.submit_normal then
    table.insert(how, keys.submit_normal .. " (Normal)")
  end
  local send = #how > 0 and ("%s sends"):format(table.concat(how, " or ")) or "no key sends"
  local range = chat.prompt_range
  local with = ""
  if range and api.nvim_buf_is_valid(range.buf) then
    local name = api.nvim_buf_get_name(range.buf)
    with = (" · with %s, lines %d-%d"):format(name ~= "" and config.relative(name) or "[No Name]", range.line1,
      range.line2)
  end
  return (" Ask Dave · %s%s · while it answers, it is queued"):format(send, with)
end

--- Redraws the winbar of the prompt windows of chat.
function M.render(chat)
  for _, win in ipairs(prompt_windows()) do
    if api.nvim_win_get_buf(win) == chat.prompt then
      set_local(win, "winbar", (hint(chat):gsub("%%", "%%%%")))
    end
  end
end

--- The prompt window under chat_win (made, or given this chat's buffer); enter: go there.
---@param chat dave.Chat
---@param chat_win integer
---@param enter boolean?
---@return integer
function M.show(chat, chat_win, enter)
  local win = prompt_windows()[1]
  if win and api.nvim_win_get_buf(win) ~= chat.prompt then
    api.nvim_win_set_buf(win, chat.prompt)
  elseif not win then
    win = api.nvim_open_win(chat.prompt, false, {
      split = "below",
      win = chat_win,
      height = math.max(1, math.floor(config.options.prompt.height)),
    })
  end
  for name, value in pairs(WINDOW_OPTIONS) do
    set_local(win, name, value)
  end
  M.render(chat)
  if enter then
    api.nvim_set_current_win(win)
  end
  return win
end

--- Closes the prompt windows of the current tab (when they are not its last windows).
function M.hide()
  for _, win in ipairs(prompt_windows()) do
    if #api.nvim_tabpage_list_wins(0) > 1 then
      pcall(api.nvim_win_close, win, false)
    end
  end
end

--- 'omnifunc' of the prompt buffer: `@` completes file names, `/` at the start the CLI's
--- slash commands (<C-x><C-o>).
function M.omnifunc(findstart, base)
  if findstart == 1 then
    local line = api.nvim_get_current_line()
    local before = line:sub(1, api.nvim_win_get_cursor(0)[2])
    local at = before:match("()@[^%s@#]*$")
    if at and (at == 1 or before:sub(at - 1, at - 1):match("%s")) then
      return at - 1
    end
    if api.nvim_win_get_cursor(0)[1] == 1 and before:match("^/%S*$") then
      return 0
    end
    return -3
  end
  local context = require("dave.context")
  if base:sub(1, 1) == "/" then
    return context.complete_command(base) or {}
  end
  return context.complete_word(base)
end

return M
