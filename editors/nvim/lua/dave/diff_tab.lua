--- Diff tabs: a tabpage with two scratch or file buffers in diff mode (or one read-only
--- buffer with a diff), opened over the user's layout and closed back to where the user was.
--- dave.review shows a proposal and a turn's change in them. Texts go into a buffer and back
--- in their own form (BOM, CRLF, final newline), so an accepted proposal is byte for byte
--- what the user saw.
local api = vim.api

local M = {}

local BOM = "\239\187\191"

local function set_local(win, name, value)
  api.nvim_set_option_value(name, value, { scope = "local", win = win })
end

--- Text -> buffer lines, and the form to write them back in (BOM, CRLF, final newline).
---@return string[] lines, {bom: boolean, crlf: boolean, eol: boolean} form
function M.to_lines(text)
  local bom = vim.startswith(text, BOM)
  if bom then
    text = text:sub(#BOM + 1)
  end
  local bare = text:gsub("\r\n", "")
  local crlf = text:find("\r\n", 1, true) ~= nil and not bare:find("\n", 1, true)
  if crlf then
    text = text:gsub("\r\n", "\n")
  end
  local eol = text:sub(-1) == "\n"
  if eol then
    text = text:sub(1, -2)
  end
  return vim.split(text, "\n", { plain = true }), { bom = bom, crlf = crlf, eol = eol }
end

--- Buffer lines -> the text they stand for, in the form they came in. A buffer emptied to
--- one empty line is the empty text (as `:w` writes it), unless the text was one newline.
function M.from_lines(lines, form)
  local nl = form.crlf and "\r\n" or "\n"
  local text
  if #lines == 1 and lines[1] == "" then
    text = (form.eol and form.was_newline) and nl or ""
  else
    text = table.concat(lines, nl) .. (form.eol and nl or "")
  end
  return (form.bom and BOM or "") .. text
end

--- A name no other buffer has: `name`, else `name (2)`, ...
local function unique_name(name)
  local candidate, n = name, 1
  while vim.fn.bufexists(candidate) == 1 do
    n = n + 1
    candidate = ("%s (%d)"):format(name, n)
  end
  return candidate
end

--- A scratch buffer holding text; highlighted like path's file type (syntax only: no
--- 'filetype', so no language server or ftplugin takes the scratch buffer for a file).
function M.scratch(name, text, path, opts)
  local buf = api.nvim_create_buf(false, true)
  local bo = vim.bo[buf]
  bo.buftype = opts.buftype or "nofile"
  bo.bufhidden = "hide"
  bo.swapfile = false
  pcall(api.nvim_buf_set_name, buf, unique_name(name))
  local lines, form = M.to_lines(text)
  form.was_newline = text == "\n" or text == "\r\n"
  bo.undolevels = -1
  api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  bo.undolevels = -123456 -- the global value again
  bo.fixendofline = false
  bo.endofline = form.eol
  bo.modified = false
  bo.modifiable = opts.modifiable or false
  local ft = path and vim.filetype.match({ filename = path, buf = buf })
  if ft and ft ~= "" then
    local lang = vim.treesitter.language.get_lang(ft) or ft
    if not pcall(vim.treesitter.start, buf, lang) then
      bo.syntax = ft
    end
  end
  return buf, form
end

function M.find_buffer(path)
  for _, buf in ipairs(api.nvim_list_bufs()) do
    if api.nvim_buf_get_name(buf) == path then
      return buf
    end
  end
end

---@class dave.DiffView
---@field tab integer?
---@field wins integer[]
---@field bufs integer[] scratch buffers, wiped with the view
---@field file_buf integer? the real file's buffer on the left
---@field loaded_file boolean? this view loaded it (unloaded again when the view ends)
---@field prev {tab: integer, win: integer}?
---@field closed boolean?

function M.valid_wins(view)
  if not (view.tab and api.nvim_tabpage_is_valid(view.tab)) then
    return {}
  end
  return api.nvim_tabpage_list_wins(view.tab)
end

--- Closes the view's tab (if open) without ending the view: its buffers stay for a reopen.
function M.close_tab(view)
  local wins = M.valid_wins(view)
  if #wins == 0 then
    view.tab = nil
    return
  end
  local was_here = api.nvim_get_current_tabpage() == view.tab
  for _, win in ipairs(wins) do
    pcall(api.nvim_win_call, win, function()
      vim.cmd("diffoff")
    end)
  end
  if #api.nvim_list_tabpages() > 1 then
    pcall(vim.cmd, ("%dtabclose!"):format(api.nvim_tabpage_get_number(view.tab)))
  else -- the only tab: keep one window, on another buffer
    api.nvim_set_current_win(wins[1])
    pcall(vim.cmd, "silent! only!")
    local other = vim.fn.bufnr("#")
    api.nvim_win_set_buf(wins[1], other > 0 and not vim.tbl_contains(view.bufs, other) and other
      or api.nvim_create_buf(true, false))
  end
  view.tab = nil
  local prev = view.prev
  if was_here and prev then
    if api.nvim_win_is_valid(prev.win) then
      api.nvim_set_current_win(prev.win)
    elseif api.nvim_tabpage_is_valid(prev.tab) then
      api.nvim_set_current_tabpage(prev.tab)
    end
  end
end

--- Ends a view: its tab closes, the user's previous window is current again (when the user
--- was in the tab), its scratch buffers are wiped, and a file buffer it loaded is unloaded.
function M.close_view(view)
  if not view or view.closed then
    return
  end
  view.closed = true
  if view.augroup then
    pcall(api.nvim_del_augroup_by_id, view.augroup)
  end
  M.close_tab(view)
  for _, buf in ipairs(view.bufs) do
    if api.nvim_buf_is_valid(buf) then
      pcall(api.nvim_buf_delete, buf, { force = true })
    end
  end
  local file = view.file_buf
  if view.loaded_file and file and api.nvim_buf_is_valid(file) and not vim.bo[file].modified
    and #vim.fn.win_findbuf(file) == 0 then
    pcall(api.nvim_buf_delete, file, {})
  end
end

--- Opens the view in a new tabpage: left (nil: one window only) and right buffers in diff mode.
function M.open_tab(view, left, right)
  if not view.prev or not api.nvim_win_is_valid(view.prev.win) then
    view.prev = { tab = api.nvim_get_current_tabpage(), win = api.nvim_get_current_win() }
  end
  vim.cmd("tabnew")
  view.tab = api.nvim_get_current_tabpage()
  local first = api.nvim_get_current_win()
  local placeholder = api.nvim_get_current_buf()
  vim.bo[placeholder].bufhidden = "wipe"
  if left then
    if type(left) == "string" then -- a file: edited in the window, like :edit
      vim.cmd("keepalt edit " .. vim.fn.fnameescape(left))
    else
      api.nvim_win_set_buf(first, left)
    end
  else
    api.nvim_win_set_buf(first, right)
  end
  if api.nvim_buf_is_valid(placeholder) and placeholder ~= api.nvim_win_get_buf(first) then
    pcall(api.nvim_buf_delete, placeholder, { force = true })
  end
  if not left then
    view.wins = { first }
    return first, first
  end
  local second = api.nvim_open_win(right, true, { split = "right", win = first })
  for _, win in ipairs({ first, second }) do
    api.nvim_win_call(win, function()
      vim.cmd("diffthis")
    end)
  end
  view.wins = { first, second }
  return first, second
end

function M.winbar(win, text)
  set_local(win, "winbar", (" " .. text):gsub("%%", "%%%%"))
end

return M
