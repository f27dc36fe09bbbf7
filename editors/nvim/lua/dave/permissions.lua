--- Permission requests: asks one at a time (others wait in a queue), answers with
--- `dave/permission`, and drops a prompt whose request already ended. A request with a
--- `proposal` (Write, Edit, MultiEdit) is reviewed in a diff tab (dave.review) and answered
--- with `:Dave accept` / `:Dave reject`; any other asks with vim.ui.select.
local client = require("dave.client")
local config = require("dave.config")

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
---@field proposal table? what a file tool would write (reviewed in a diff tab)
---@field waiting_autocmd integer? the ModeChanged autocmd that opens the diff tab later

local queue = {} ---@type dave.PermissionRequest[]
local active = nil ---@type dave.PermissionRequest?

local show_next

local function notify(message, level)
  vim.notify(message, level or vim.log.levels.INFO, { title = "dave" })
end

local function answer(req, decision, reason, edited)
  if req.ended then
    return
  end
  req.ended = true
  client.request("dave/permission", {
    requestId = req.requestId,
    decision = decision,
    reason = reason,
    editedContent = edited,
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

--- Whether the request is reviewed in a diff tab.
local function reviewed(req)
  return type(req.proposal) == "table" and config.options.review.diff
end

--- Typing (Insert, Replace, Visual, Select, command-line, Terminal mode): a diff tab waits.
local function typing()
  local mode = api.nvim_get_mode()
  return mode.blocking or not (mode.mode == "n" or mode.mode == "nt")
end

local function stop_waiting(req)
  if req.waiting_autocmd then
    pcall(api.nvim_del_autocmd, req.waiting_autocmd)
    req.waiting_autocmd = nil
  end
end

--- Opens the request's diff tab now, or (while the user types) when they are back in Normal mode.
local function review_later(req)
  local review = require("dave.review")
  if not typing() then
    return review.show(req)
  end
  notify(("dave: %s %s waits for review; its diff opens when you are back in Normal mode (or :Dave review)"):format(
    tostring(req.toolName),
    config.relative(tostring(req.proposal.path))
  ))
  req.waiting_autocmd = api.nvim_create_autocmd("ModeChanged", {
    callback = function()
      vim.schedule(function()
        if req.ended or not req.waiting_autocmd or typing() then
          return
        end
        stop_waiting(req)
        review.show(req)
      end)
    end,
  })
end

show_next = function()
  if active or #queue == 0 then
    return
  end
  local req = table.remove(queue, 1)
  active = req
  if reviewed(req) then
    return review_later(req)
  end
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
  stop_waiting(req)
  if req.proposal then
    require("dave.review").close(req)
  end
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

--- The proposal request that `:Dave accept` / `:Dave reject` answer: the one whose diff tab
--- holds the current buffer, else the one being reviewed.
local function reviewing()
  local req = require("dave.review").request_of(api.nvim_get_current_buf())
  if req and not req.ended then
    return req
  end
  if active and reviewed(active) and not active.ended then
    return active
  end
end

--- Accepts a proposal: `allow` (always: `allowAlways`) with `editedContent` when the user
--- changed the proposal buffer. req: nil for the one being reviewed.
---@param req dave.PermissionRequest?
---@param always boolean?
function M.accept(req, always)
  req = req and not req.ended and req or reviewing()
  if not req then
    return notify("dave: no change waits for review")
  end
  local edited = require("dave.review").edited(req)
  answer(req, always and "allowAlways" or "allow", nil, edited)
  close(req)
end

--- Rejects a proposal, with a reason the model sees (asked with vim.ui.input; optional).
---@param req dave.PermissionRequest?
function M.reject(req)
  req = req and not req.ended and req or reviewing()
  if not req then
    return notify("dave: no change waits for review")
  end
  vim.ui.input({ prompt = "Reason for rejecting (optional): " }, function(reason)
    if req.ended then
      return
    end
    answer(req, "deny", (reason and reason ~= "") and reason or "The user rejected this change.")
    close(req)
  end)
end

--- Opens the diff tab of the change that waits for review (one closed unanswered, or one
--- waiting for the user to leave Insert mode).
function M.review()
  local req = reviewing()
  if not req then
    return notify("dave: no change waits for review")
  end
  stop_waiting(req)
  require("dave.review").show(req)
end

--- How many requests wait for an answer, the one on screen included.
function M.pending()
  return #queue + (active and 1 or 0)
end

return M
