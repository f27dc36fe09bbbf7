--- Where a chat is shown: its split (position and size from `window`), its window options
--- (set for the chat in that window only), its share of the editor kept when Neovim is
--- resized, the prompt area closed with its last window, and its winbar.
local config = require("dave.config")

local api = vim.api

local M = {}

--- The winbar's spinner while a query is busy (dave.chat turns it).
M.SPINNER = { "⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏" }

local WINDOW_OPTIONS = vim.tbl_extend("force", require("dave.prompt").TEXT_WINDOW, {
  -- The model's thinking is a fold, closed (zo opens it).
  foldmethod = "expr",
  foldexpr = "v:lua.require'dave.chat'.fold(v:lnum)",
  foldtext = "v:lua.require'dave.chat'.foldtext()",
  foldlevel = 0,
  foldenable = true,
})

--- Sets a window option for this buffer in that window only (`:setlocal`), so it does not
--- follow another buffer into the window.
local function set_local(win, name, value)
  api.nvim_set_option_value(name, value, { scope = "local", win = win })
end

local chats = setmetatable({}, { __mode = "k" }) ---@type table<dave.Chat, boolean> every chat, for VimResized

--- A chat whose windows keep their share of the editor (until its buffer is wiped: untrack).
function M.track(chat)
  chats[chat] = true
end

function M.untrack(chat)
  chats[chat] = nil
end

--- The chat window's options, set for this buffer in that window only.
---@param win integer
function M.apply_options(win)
  for name, value in pairs(WINDOW_OPTIONS) do
    set_local(win, name, value)
  end
  set_local(win, "conceallevel", config.options.window.conceallevel)
  set_local(win, "concealcursor", "nc")
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

--- Shows the chat in a split, with its prompt area under it; enter: move the cursor to the
--- chat (into_prompt: to the prompt area).
---@param chat dave.Chat
---@param enter boolean?
---@param into_prompt boolean?
function M.open(chat, enter, into_prompt)
  local win = chat:windows()[1]
  if not win then
    local position = config.options.window.position
    local size = window_size(position)
    local horizontal = position == "above" or position == "below"
    win = api.nvim_open_win(chat.buf, false, {
      split = position,
      win = -1,
      width = not horizontal and size or nil,
      height = horizontal and size or nil,
    })
    local last = api.nvim_buf_line_count(chat.buf)
    api.nvim_win_set_cursor(win, { last, 0 })
  end
  M.apply_options(win)
  chat:_render_winbar()
  require("dave.prompt").show(chat, win, into_prompt)
  if enter and not into_prompt then
    api.nvim_set_current_win(win)
  end
  return win
end

--- Keeps each chat window at its configured share of the editor (`window.size` below 1).
local function keep_ratio()
  if config.options.window.size >= 1 then
    return
  end
  local position = config.options.window.position
  local vertical = position == "left" or position == "right"
  local size = window_size(position)
  for chat in pairs(chats) do
    for _, win in ipairs(chat:windows()) do
      if vertical then
        pcall(api.nvim_win_set_width, win, size)
      else
        pcall(api.nvim_win_set_height, win, size)
      end
    end
    chat:_render_winbar()
  end
end

local layout = api.nvim_create_augroup("dave_chat_layout", { clear = true })
api.nvim_create_autocmd("VimResized", {
  group = layout,
  callback = keep_ratio,
  desc = "dave: keep the chat window's share of the editor",
})
api.nvim_create_autocmd("WinClosed", {
  group = layout,
  callback = function(args)
    if not (api.nvim_buf_is_valid(args.buf) and vim.bo[args.buf].filetype == "dave") then
      return
    end
    -- The last chat window of the tab went (:q): its prompt area goes with it.
    vim.schedule(function()
      for _, win in ipairs(api.nvim_tabpage_list_wins(0)) do
        if vim.bo[api.nvim_win_get_buf(win)].filetype == "dave" then
          return
        end
      end
      require("dave.prompt").hide()
    end)
  end,
  desc = "dave: close the prompt area with the chat window",
})

--- Closes the chat's windows (and its prompt area); the buffer stays.
---@param chat dave.Chat
function M.close(chat)
  require("dave.prompt").hide()
  for _, win in ipairs(chat:windows()) do
    if #api.nvim_tabpage_list_wins(0) > 1 then
      api.nvim_win_close(win, false)
    else -- the last window stays; it shows another buffer instead
      local alt = vim.fn.bufnr("#")
      local other = (alt > 0 and alt ~= chat.buf and api.nvim_buf_is_valid(alt)) and alt
        or api.nvim_create_buf(true, false)
      api.nvim_win_set_buf(win, other)
    end
  end
end

--- The winbar of the chat's windows: ` Dave · title  ⠋ status`.
---@param chat dave.Chat
function M.render_winbar(chat)
  local mark = chat.busy and M.SPINNER[chat.frame] or "●"
  local tail = ("  %s %s"):format(mark, chat.status)
  for _, win in ipairs(chat:windows()) do
    -- The title gives way when the window is narrow (Neovim would cut the start instead).
    local room = api.nvim_win_get_width(win) - vim.fn.strdisplaywidth(" Dave · " .. tail) - 1
    local title = chat.title
    if vim.fn.strdisplaywidth(title) > room then
      title = room > 1 and (vim.fn.strcharpart(title, 0, room - 1) .. "…") or ""
    end
    local bar = (" Dave · " .. title .. tail):gsub("%%", "%%%%")
    set_local(win, "winbar", bar)
  end
end

return M
