--- An ExitPlanMode request: the plan in a markdown float (not entered) while vim.ui.select
--- (kind `dave.plan`) asks to approve it, approve it into acceptEdits, or keep planning with
--- the user's feedback.
local ledger = require("dave.permissions.ledger")
local menu = require("dave.permissions.menu")

local api = vim.api

local M = {}

M.CHOICES = { "Approve", "Approve and accept edits", "Keep planning" }

--- The plan's float closes (the request ended, or its menu was dismissed).
---@param req dave.PermissionRequest
function M.close(req)
  if req.plan_win and api.nvim_win_is_valid(req.plan_win) then
    local buf = api.nvim_win_get_buf(req.plan_win)
    pcall(api.nvim_win_close, req.plan_win, true)
    pcall(api.nvim_buf_delete, buf, { force = true })
  end
  req.plan_win = nil
end

--- The plan in a markdown float (not entered), while its approval is asked.
local function show(req)
  M.close(req)
  local lines = vim.split(req.plan ~= "" and req.plan or "(the model wrote no plan)", "\n", { plain = true })
  local buf = api.nvim_create_buf(false, true)
  api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.bo[buf].bufhidden = "wipe"
  vim.bo[buf].modifiable = false
  vim.bo[buf].filetype = "markdown"
  pcall(api.nvim_buf_set_name, buf, "dave://plan/" .. req.requestId)
  local width = math.min(math.max(40, math.floor(vim.o.columns * 0.6)), vim.o.columns - 4)
  local height = math.min(#lines + 1, math.max(3, math.floor(vim.o.lines * 0.6)))
  req.plan_win = api.nvim_open_win(buf, false, {
    relative = "editor",
    width = math.max(width, 1),
    height = math.max(height, 1),
    row = 1,
    col = math.max(0, math.floor((vim.o.columns - width) / 2)),
    border = "rounded",
    title = " Dave's plan ",
    title_pos = "center",
    style = "minimal",
  })
  vim.wo[req.plan_win].wrap = true
end

--- A plan's decision: approve (into the default mode or acceptEdits) or keep planning with
--- the user's feedback.
---@param req dave.PermissionRequest
---@param choice string one of M.CHOICES
function M.decide(req, choice)
  if choice == M.CHOICES[1] then
    ledger.answer(req, "allow", "approved")
  elseif choice == M.CHOICES[2] then
    ledger.answer(req, "allow", "approved; edits are accepted from now on", nil, nil,
      { permissionMode = "acceptEdits" })
  elseif choice == M.CHOICES[3] then
    M.close(req)
    menu.deny_with_reason(req, "What should change in the plan? ", "Keep planning.", "keep planning")
  end
end

--- The plan in a float while vim.ui.select asks for the decision.
---@param req dave.PermissionRequest
function M.ask(req)
  show(req)
  local prompt = (req.title and ("[%s] "):format(req.title) or "") .. "Approve the plan?"
  menu.select(req, M.CHOICES, { prompt = prompt, kind = "dave.plan" }, function(choice)
    if not choice then
      return M.close(req)
    end
    M.decide(req, choice)
  end)
end

return M
