--- The menus that answer a request: vim.ui.select (one open at a time, its floating window
--- remembered so it closes if the request ends first) and vim.ui.input for a reason to deny.
--- Dismissing either answers nothing: the request still waits.
local ledger = require("dave.permissions.ledger")

local api = vim.api

local M = {}

local picking = nil ---@type dave.PermissionRequest? the request whose vim.ui.select is open

--- vim.ui.select for a request the user chose to answer; on_done(choice, index) unless the
--- request ended meanwhile.
---@param req dave.PermissionRequest
function M.select(req, items, opts, on_done)
  picking = req
  local before = api.nvim_get_current_win()
  vim.ui.select(items, opts, function(choice, idx)
    if picking == req then
      picking = nil
    end
    if req.ended then
      return
    end
    on_done(choice, idx)
  end)
  local win = api.nvim_get_current_win()
  if picking == req and win ~= before and api.nvim_win_get_config(win).relative ~= "" then
    req.prompt_win = win
  end
end

--- Deny, with a reason the model sees (asked with vim.ui.input; optional). prompt: the
--- input's prompt; fallback: the reason sent when none is typed.
---@param req dave.PermissionRequest
function M.deny_with_reason(req, prompt, fallback, outcome_word)
  vim.ui.input({ prompt = prompt }, function(reason)
    if req.ended then
      return
    end
    local given = reason and vim.trim(reason) ~= "" and reason or nil
    ledger.answer(req, "deny", given and ("%s: %s"):format(outcome_word, given) or outcome_word, given or fallback)
  end)
end

--- Whether a menu is open for a request that still waits.
function M.open()
  return picking ~= nil and not picking.ended
end

--- The request ended: its menu, if open, closes.
---@param req dave.PermissionRequest
function M.close(req)
  if picking == req then
    picking = nil
    if req.prompt_win and api.nvim_win_is_valid(req.prompt_win) then
      pcall(api.nvim_win_close, req.prompt_win, true)
    end
  end
end

return M
