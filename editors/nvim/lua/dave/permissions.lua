--- Permission requests: asks one at a time with vim.ui.select (others wait in a queue),
--- answers with `dave/permission`, and drops a prompt whose request already ended.
local client = require("dave.client")

local api = vim.api

local M = {}

local ALLOW, ALWAYS, DENY = "Allow", "Allow always", "Deny"

---@class dave.PermissionRequest
---@field requestId string
---@field sessionId string
---@field toolName string
---@field message string? the server's question, e.g. `Allow Write notes.txt?`
---@field allowAlways {rule: string, label: string}? what "Allow always" would add (newer servers)
---@field title string? the chat's title
---@field ended boolean? resolved elsewhere (cancel, rule): a late answer is dropped
---@field prompt_win integer? a floating window the select UI opened

local queue = {} ---@type dave.PermissionRequest[]
local active = nil ---@type dave.PermissionRequest?

local show_next

local function answer(req, decision, reason)
  if req.ended then
    return
  end
  req.ended = true
  client.request("dave/permission", {
    requestId = req.requestId,
    decision = decision,
    reason = reason,
  }, function(err)
    if err then
      vim.notify("dave: " .. (err.message or "the permission answer failed"), vim.log.levels.WARN)
    end
  end)
end

local function finish(req)
  if active == req then
    active = nil
  end
  vim.schedule(show_next)
end

--- The choices of a request and the decision each stands for. "Allow always" names the rule
--- it would add, so the user knows what they grant before granting it.
---@return string[] choices, table<string, string> decisions
function M.choices(req)
  local always = ALWAYS
  local rule = type(req.allowAlways) == "table" and req.allowAlways or nil
  if rule and type(rule.rule) == "string" then
    local label = type(rule.label) == "string" and rule.label ~= "" and rule.label or nil
    always = label and ("%s: %s  [%s]"):format(ALWAYS, label, rule.rule)
      or ("%s  [%s]"):format(ALWAYS, rule.rule)
  end
  return { ALLOW, always, DENY }, { [ALLOW] = "allow", [always] = "allowAlways", [DENY] = "deny" }
end

local function on_choice(req, decision)
  if req.ended then
    return finish(req)
  end
  if decision == "allow" or decision == "allowAlways" then
    answer(req, decision)
  elseif decision == "deny" then
    return vim.ui.input({ prompt = "Reason for denying (optional): " }, function(reason)
      answer(req, "deny", (reason and reason ~= "") and reason or "The user denied this.")
      finish(req)
    end)
  else
    answer(req, "deny", "The user dismissed the permission prompt.")
  end
  finish(req)
end

show_next = function()
  if active or #queue == 0 then
    return
  end
  local req = table.remove(queue, 1)
  active = req
  -- The server words the question (`Allow Write notes.txt?`); only an older server's request
  -- without one gets the bare tool name.
  local prompt = (type(req.message) == "string" and req.message ~= "") and req.message
    or ("Allow " .. tostring(req.toolName or "this tool") .. "?")
  if req.title then
    prompt = ("[%s] %s"):format(req.title, prompt)
  end
  local before = api.nvim_get_current_win()
  local choices, decisions = M.choices(req)
  vim.ui.select(choices, { prompt = prompt, kind = "dave.permission" }, function(choice)
    on_choice(req, choice and decisions[choice])
  end)
  -- An asynchronous select UI leaves its window open; remember it to close it if the
  -- request ends before the user answers.
  local win = api.nvim_get_current_win()
  if active == req and win ~= before and api.nvim_win_get_config(win).relative ~= "" then
    req.prompt_win = win
  end
end

--- Queues a `permissionRequest` report for an answer.
---@param req dave.PermissionRequest
function M.ask(req)
  table.insert(queue, req)
  vim.schedule(show_next)
end

local function close(req)
  req.ended = true
  for i = #queue, 1, -1 do
    if queue[i] == req then
      table.remove(queue, i)
    end
  end
  if active == req then
    if req.prompt_win and api.nvim_win_is_valid(req.prompt_win) then
      pcall(api.nvim_win_close, req.prompt_win, true)
    end
    finish(req)
  end
end

local function matching(pred)
  local found = vim.tbl_filter(pred, queue)
  if active and pred(active) then
    table.insert(found, active)
  end
  return found
end

--- A request ended (`permissionResolved`): its prompt is closed or never shown.
function M.resolved(request_id)
  for _, req in ipairs(matching(function(r)
    return r.requestId == request_id
  end)) do
    close(req)
  end
end

--- A query of the session ended: none of its prompts can be answered any more.
function M.drop_session(session_id)
  for _, req in ipairs(matching(function(r)
    return r.sessionId == session_id
  end)) do
    close(req)
  end
end

--- How many requests wait for an answer, the one on screen included.
function M.pending()
  return #queue + (active and 1 or 0)
end

return M
