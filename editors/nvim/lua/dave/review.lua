--- What is reviewed in a diff tab (dave.diff_tab). A proposal of a file tool
--- (`permissionRequest.proposal`): the file now on the left (an empty scratch buffer for a new
--- file) and the editable proposal on the right, both in diff mode; `:w` in the proposal
--- accepts it. A turn's change (`dave/changes`): the same, before | after, read-only. A
--- proposal whose texts the server did not send (truncated, binary) shows its diff, or a
--- note, read-only.
local config = require("dave.config")
local diff_tab = require("dave.diff_tab")

local api = vim.api

local M = {}

local function notify(message, level)
  vim.notify(message, level or vim.log.levels.INFO, { title = "dave" })
end

local function text_of(value)
  return type(value) == "string" and value or nil
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
    local buf, form = diff_tab.scratch("dave://proposal/" .. rel, proposal.proposed, path, {
      buftype = "acwrite",
      modifiable = true,
    })
    view.right, view.form = buf, form
    table.insert(view.bufs, buf)
    if not proposal.exists then
      view.left = diff_tab.scratch("dave://proposal/" .. rel .. " (new)", "", path, {})
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
    local buf = diff_tab.scratch("dave://proposal/" .. rel .. " (diff)", note, nil, {})
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
  for _, win in ipairs(diff_tab.valid_wins(view)) do
    if api.nvim_win_get_buf(win) == view.right then
      api.nvim_set_current_win(win)
      return
    end
  end
  diff_tab.close_tab(view) -- a tab the user broke up: start it afresh
  local left
  if M.editable(req.proposal) then
    if view.left then
      left = view.left
    else
      if view.loaded_file == nil then -- at the first show only: a reopen finds it loaded by us
        local existing = diff_tab.find_buffer(view.path)
        view.loaded_file = not (existing and api.nvim_buf_is_loaded(existing))
      end
      left = view.path
    end
  end
  local first, second = diff_tab.open_tab(view, left, view.right)
  if left then
    view.file_buf = type(left) == "string" and api.nvim_win_get_buf(first) or nil
    diff_tab.winbar(first, req.proposal.exists and (view.rel .. " (now)") or (view.rel .. " (new file)"))
  end
  local title = req.title and ("[%s] "):format(req.title) or ""
  diff_tab.winbar(second, ("%s%s %s · %s"):format(title, tostring(req.toolName or "change"), view.rel, keys_hint()))
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
  local text = diff_tab.from_lines(lines, form)
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
    diff_tab.close_view(view)
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
  diff_tab.close_view(change_view)
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
    local left = diff_tab.scratch(name .. " (before)", before, path, {})
    local right = diff_tab.scratch(name, after, path, {})
    view.bufs = { left, right }
    first, second = diff_tab.open_tab(view, left, right)
    diff_tab.winbar(first, ("%s before turn %d"):format(rel, turn))
  else
    local diff = text_of(file.diff)
    local note = diff and diff ~= "" and diff
      or ("%s (%s): no text to show (binary or too large)\n"):format(rel, tostring(file.status))
    local buf = diff_tab.scratch(name .. " (diff)", note, nil, {})
    if diff and diff ~= "" then
      vim.bo[buf].syntax = "diff"
    end
    view.bufs = { buf }
    second = select(2, diff_tab.open_tab(view, nil, buf))
  end
  diff_tab.winbar(second, ("%s %s%s, turn %d · q closes · :Dave undo %s reverts"):format(
    rel, tostring(file.status), require("dave.changes").counts(file), turn, rel))
  for _, buf in ipairs(view.bufs) do
    vim.keymap.set("n", "q", function()
      diff_tab.close_view(view)
    end, { buffer = buf, nowait = true, desc = "dave: close this diff" })
  end
  return view
end

return M
