--- Diff tabs. A proposal of a file tool (`permissionRequest.proposal`): a new tabpage with the
--- file now on the left (an empty scratch buffer for a new file) and the editable proposal on
--- the right, both in diff mode; `:w` in the proposal accepts it. A turn's change
--- (`dave/changes`): the same, before | after, read-only. A proposal whose texts the server did
--- not send (truncated, binary) shows its diff, or a note, read-only.
local config = require("dave.config")

local api = vim.api

local M = {}

local BOM = "\239\187\191"

local function notify(message, level)
  vim.notify(message, level or vim.log.levels.INFO, { title = "dave" })
end

local function set_local(win, name, value)
  api.nvim_set_option_value(name, value, { scope = "local", win = win })
end

local function text_of(value)
  return type(value) == "string" and value or nil
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
local function scratch(name, text, path, opts)
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

local function find_buffer(path)
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

local function valid_wins(view)
  if not (view.tab and api.nvim_tabpage_is_valid(view.tab)) then
    return {}
  end
  return api.nvim_tabpage_list_wins(view.tab)
end

--- Closes the view's tab (if open) without ending the view: its buffers stay for a reopen.
local function close_tab(view)
  local wins = valid_wins(view)
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
  close_tab(view)
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
local function open_tab(view, left, right)
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

local function winbar(win, text)
  set_local(win, "winbar", (" " .. text):gsub("%%", "%%%%"))
end

-- ------------------------------------------------------------------ proposals

local views = {} ---@type table<string, dave.DiffView> requestId -> its proposal's view

local function keys_hint()
  local keys = config.options.review.keymaps
  local accept = keys.accept and (" or " .. keys.accept) or ""
  local reject = keys.reject and (" or " .. keys.reject) or ""
  return (":w%s accept · :Dave reject%s · :Dave accept always"):format(accept, reject)
end

--- Whether a proposal carries both whole texts (else its diff is shown read-only).
function M.editable(proposal)
  return text_of(proposal.original) ~= nil and text_of(proposal.proposed) ~= nil
    and not proposal.truncated and not proposal.binary
end

local function map_keys(view, buf)
  local permissions = require("dave.permissions")
  local keys = config.options.review.keymaps
  local actions = {
    accept = function()
      permissions.accept(view.req)
    end,
    reject = function()
      permissions.reject(view.req)
    end,
  }
  for action, fn in pairs(actions) do
    if keys[action] then
      vim.keymap.set("n", keys[action], fn, { buffer = buf, desc = "dave: " .. action .. " this change" })
    end
  end
end

--- The view of a proposal: its buffers, made once; the tab opens with `show`.
local function make_view(req)
  local proposal = req.proposal
  local path = tostring(proposal.path)
  local rel = config.relative(path)
  local view = { req = req, bufs = {}, wins = {}, path = path, rel = rel }
  view.augroup = api.nvim_create_augroup("dave_review_" .. req.requestId, { clear = true })
  if M.editable(proposal) then
    local buf, form = scratch("dave://proposal/" .. rel, proposal.proposed, path, {
      buftype = "acwrite",
      modifiable = true,
    })
    view.right, view.form = buf, form
    table.insert(view.bufs, buf)
    if not proposal.exists then
      view.left = scratch("dave://proposal/" .. rel .. " (new)", "", path, {})
      table.insert(view.bufs, view.left)
    end
    api.nvim_create_autocmd("BufWriteCmd", {
      group = view.augroup,
      buffer = buf,
      callback = function()
        require("dave.permissions").accept(req)
      end,
    })
  else
    local note
    if proposal.binary then
      note = ("%s is not a text file: no diff to show.\n"):format(rel)
    elseif text_of(proposal.diff) and proposal.diff ~= "" then
      note = proposal.diff
    else
      note = ("The change to %s is too large to show.\n"):format(rel)
    end
    local buf = scratch("dave://proposal/" .. rel .. " (diff)", note, nil, {})
    if not proposal.binary and text_of(proposal.diff) and proposal.diff ~= "" then
      vim.bo[buf].syntax = "diff"
    end
    view.right = buf
    table.insert(view.bufs, buf)
  end
  map_keys(view, view.right)
  api.nvim_create_autocmd("BufHidden", {
    group = view.augroup,
    buffer = view.right,
    callback = function()
      if not view.closed and not view.req.ended then
        vim.schedule(function()
          if not view.closed and not view.req.ended and #vim.fn.win_findbuf(view.right) == 0 then
            notify(("dave: the change to %s still waits for you: :Dave review shows it again, "
              .. ":Dave accept or :Dave reject answers it"):format(rel))
          end
        end)
      end
    end,
  })
  return view
end

--- Opens (or goes to) the diff tab of a proposal request.
---@param req dave.PermissionRequest
function M.show(req)
  local view = views[req.requestId]
  if not view then
    view = make_view(req)
    views[req.requestId] = view
  end
  for _, win in ipairs(valid_wins(view)) do
    if api.nvim_win_get_buf(win) == view.right then
      api.nvim_set_current_win(win)
      return
    end
  end
  close_tab(view) -- a tab the user broke up: start it afresh
  local left
  if M.editable(req.proposal) then
    if view.left then
      left = view.left
    else
      if view.loaded_file == nil then -- at the first show only: a reopen finds it loaded by us
        local existing = find_buffer(view.path)
        view.loaded_file = not (existing and api.nvim_buf_is_loaded(existing))
      end
      left = view.path
    end
  end
  local first, second = open_tab(view, left, view.right)
  if left then
    view.file_buf = type(left) == "string" and api.nvim_win_get_buf(first) or nil
    winbar(first, req.proposal.exists and (view.rel .. " (now)") or (view.rel .. " (new file)"))
  end
  local title = req.title and ("[%s] "):format(req.title) or ""
  winbar(second, ("%s%s %s · %s"):format(title, tostring(req.toolName or "change"), view.rel, keys_hint()))
  api.nvim_set_current_win(second)
end

--- The proposal buffer's text when the user changed it, else nil (accept it as proposed).
function M.edited(req)
  local view = views[req.requestId]
  if not (view and view.form and api.nvim_buf_is_valid(view.right)) then
    return nil
  end
  local lines = api.nvim_buf_get_lines(view.right, 0, -1, true)
  local form = vim.tbl_extend("force", view.form, { eol = vim.bo[view.right].endofline })
  local text = M.from_lines(lines, form)
  if text ~= req.proposal.proposed then
    return text
  end
end

--- The request's diff tab ends (it was answered or resolved): closed, the user's previous
--- window restored. Scheduled: an answer may come from inside the proposal buffer's `:w`.
function M.close(req)
  local view = views[req.requestId]
  if not view then
    return
  end
  views[req.requestId] = nil
  vim.schedule(function()
    M.close_view(view)
  end)
end

--- Whether the proposal request's view exists (shown or hidden).
function M.has_view(req)
  return views[req.requestId] ~= nil
end

--- The proposal request whose diff buffer is buf, if any.
function M.request_of(buf)
  for _, view in pairs(views) do
    if vim.tbl_contains(view.bufs, buf) or view.file_buf == buf then
      return view.req
    end
  end
end

-- ------------------------------------------------------------------ a turn's changes

local change_view = nil ---@type dave.DiffView?

--- Shows one file of `dave/changes` read-only: before | after in diff mode, or its diff.
---@param file table an entry of `dave/changes` files
---@param turn integer
function M.show_change(file, turn)
  M.close_view(change_view)
  local path = tostring(file.path)
  local rel = config.relative(path)
  local view = { bufs = {}, wins = {} }
  change_view = view
  local before, after = text_of(file.before), text_of(file.after)
  if file.status == "created" then
    before = before or ""
  elseif file.status == "deleted" then
    after = after or ""
  end
  local name = ("dave://changes/%d/%s"):format(turn, rel)
  local first, second
  if before and after then
    local left = scratch(name .. " (before)", before, path, {})
    local right = scratch(name, after, path, {})
    view.bufs = { left, right }
    first, second = open_tab(view, left, right)
    winbar(first, ("%s before turn %d"):format(rel, turn))
  else
    local diff = text_of(file.diff)
    local note = diff and diff ~= "" and diff
      or ("%s (%s): no text to show (binary or too large)\n"):format(rel, tostring(file.status))
    local buf = scratch(name .. " (diff)", note, nil, {})
    if diff and diff ~= "" then
      vim.bo[buf].syntax = "diff"
    end
    view.bufs = { buf }
    second = select(2, open_tab(view, nil, buf))
  end
  winbar(second, ("%s %s%s, turn %d · q closes · :Dave undo %s reverts"):format(
    rel, tostring(file.status), require("dave.changes").counts(file), turn, rel))
  for _, buf in ipairs(view.bufs) do
    vim.keymap.set("n", "q", function()
      M.close_view(view)
    end, { buffer = buf, nowait = true, desc = "dave: close this diff" })
  end
  return view
end

return M
