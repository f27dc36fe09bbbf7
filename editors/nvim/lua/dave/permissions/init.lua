--- Permission requests (`permissionRequest` reports) and their answers (`dave/permission`).
--- Nothing here ever takes the user's keys unasked: a request is shown as a block in its
--- chat buffer (what is asked, in full, and the keys that answer it), a notification says one
--- waits, and the `User DavePermissionRequest` event fires. It is answered only by a
--- deliberate action: the chat's keys (`ga` allow, `gA` allow always, `gd` deny, `gp` the
--- menu) or `:Dave permissions`, which opens vim.ui.select. A request with a `proposal`
--- (Write, Edit, MultiEdit) is a block too (the file and its diff summary); its diff tab
--- (dave.review) opens only when asked (`gr`/`gp` in the chat, `:Dave review`; or at once,
--- unless the user types, with `review.open = "auto"`), one at a time, and is answered with
--- `:w`, `:Dave accept` / `:Dave reject`. A request that ended elsewhere (cancel, a rule) is
--- dropped, and a late answer to it is never sent. A question the plugin asks itself (folder
--- trust, dave.trust) is a request of the same kind, shown and answered the same ways.
---
--- This module routes: a request in (ask, resolved, drop_session), a deliberate action out
--- (the chat's keys, `:Dave permissions`, accept/reject of a proposal), and the queue of
--- proposals for review. The ledger (which requests wait, answering, settling) is
--- dave.permissions.ledger, free of UI; the menus are .menu, the model's questions .questions,
--- a plan's approval .plan, and the block in the chat .block.
local block = require("dave.permissions.block")
local config = require("dave.config")
local ledger = require("dave.permissions.ledger")
local menu = require("dave.permissions.menu")
local plan = require("dave.permissions.plan")
local questions = require("dave.permissions.questions")

local api = vim.api

local M = {}

local reviewing = nil ---@type dave.PermissionRequest? the proposal whose diff tab is on review

local review_next

local function notify(message, level)
  vim.notify(message, level or vim.log.levels.INFO, { title = "dave" })
end

M.choices = block.choices
M.PLAN_CHOICES = plan.CHOICES

--- A request ended: its menu, plan float and diff tab close, and its block in the chat says
--- how it ended (outcome, when given); the next proposal in line comes up for review.
ledger.listen({
  settled = function(req, outcome)
    plan.close(req)
    if req.proposal then
      require("dave.review").close(req)
    end
    menu.close(req)
    if req.chat and req.block and outcome then
      req.chat:set_block_hint(req.block, "→ " .. outcome)
    end
    if reviewing == req then
      reviewing = nil
      vim.schedule(review_next)
    end
  end,
  failed = function(message)
    vim.notify("dave: " .. message, vim.log.levels.WARN)
  end,
})

--- The decision of a plain request (allow, allowAlways or deny).
local function decide(req, decision)
  if decision == "allow" then
    ledger.answer(req, "allow", "allowed")
  elseif decision == "allowAlways" then
    local rule = type(req.allowAlways) == "table" and req.allowAlways.rule
    ledger.answer(req, "allowAlways", rule and ("allowed always: " .. rule) or "allowed always")
  elseif decision == "deny" then
    menu.deny_with_reason(req, "Reason for denying (optional): ", "The user denied this.", "denied")
  end
end

--- The user's answer to a question the plugin asks itself: the block says which, then its
--- owner acts on it.
local function decide_own(req, index)
  local choice = req.own.choices[index]
  if req.ended or not choice then
    return
  end
  req.decided = true
  ledger.settle(req, choice.outcome)
  req.own.decide(index)
end

--- Opens vim.ui.select (or, for a proposal, the diff tab) for the request.
local function open_picker(req)
  if ledger.reviewed(req) then
    return M.review(req)
  end
  if req.own then
    local labels = vim.tbl_map(function(c)
      return c.label
    end, req.own.choices)
    return menu.select(req, labels, { prompt = req.own.prompt, kind = "dave.confirm" }, function(_, index)
      if index then
        decide_own(req, index)
      end
    end)
  end
  if req.questions then
    return questions.ask(req)
  end
  if req.plan then
    return plan.ask(req)
  end
  local prompt = block.question_of(req)
  if req.title then
    prompt = ("[%s] %s"):format(req.title, prompt)
  end
  local choices, decisions = block.choices(req)
  menu.select(req, choices, { prompt = prompt, kind = "dave.permission" }, function(choice)
    if choice then
      decide(req, decisions[choice])
    end
  end)
end

--- Fires `User DavePermissionRequest` (data: requestId, sessionId, toolName), for users who
--- want to be told their own way.
local function announce(req)
  pcall(api.nvim_exec_autocmds, "User", {
    pattern = "DavePermissionRequest",
    modeline = false,
    data = { requestId = req.requestId, sessionId = req.sessionId, toolName = req.toolName },
  })
end

--- Typing (Insert, Replace, Visual, Select, command-line, Terminal mode): a diff tab waits.
local function typing()
  local mode = api.nvim_get_mode()
  return mode.blocking or not (mode.mode == "n" or mode.mode == "nt")
end

--- The notification that a proposal waits, naming the ways to its diff tab.
local function review_note(req)
  local key = config.options.keymaps.review
  notify(("dave: %s%s %s waits for review; %s:Dave review opens its diff"):format(
    req.title and ("[%s] "):format(req.title) or "",
    tostring(req.toolName),
    config.relative(tostring(req.proposal.path)),
    type(key) == "string" and (key .. " in the chat or ") or ""
  ))
end

--- The proposal first in line: by default its diff tab waits for a deliberate `:Dave review`
--- (`gr`/`gp` in the chat), so keys typed as it arrives (`:w` above all, which accepts it)
--- never land in it. With `review.open = "auto"` it opens now unless the user is typing, and
--- never when they leave Insert mode (the keys that follow <Esc> would land in it).
local function review_later(req)
  if config.options.review.open ~= "auto" then
    return -- M.ask said it waits
  end
  if not typing() then
    return require("dave.review").show(req)
  end
  review_note(req)
end

--- The proposal first in line is reviewed: its diff tab opens when asked (see review_later).
review_next = function()
  if reviewing and not reviewing.ended then
    return
  end
  reviewing = ledger.first(nil, true)
  if reviewing then
    review_later(reviewing)
  end
end

--- Takes a `permissionRequest` report: shown in its chat (a proposal also queued for review).
---@param req dave.PermissionRequest
function M.ask(req)
  ledger.add(req)
  if req.chat then
    local lines, hint = block.of(req)
    req.block = req.chat:add_block(lines, hint)
  end
  if ledger.reviewed(req) then
    if config.options.review.open ~= "auto" then
      review_note(req)
    end
    vim.schedule(review_next)
  else
    local title = req.title and ("[%s] "):format(req.title) or ""
    local what = req.questions and "the model asks you" or req.plan and "the plan waits for approval"
      or req.own and req.own.notice or block.question_of(req)
    notify(("dave: %s%s — answer in the chat, or :Dave permissions"):format(title, what))
  end
  announce(req)
end

--- A request ended (`permissionResolved`): its block says so, its prompt is closed.
---@param request_id string
---@param value table? the permissionResolved report (decision, by)
function M.resolved(request_id, value)
  for _, req in ipairs(ledger.all()) do
    if req.requestId == request_id then
      local outcome = "no longer asked"
      if value and value.decision then
        local word = value.decision == "allow" and "allowed" or "denied"
        outcome = ("%s (%s)"):format(word, tostring(value.by or "server"))
      end
      ledger.settle(req, outcome)
    end
  end
end

--- A query of the session ended: none of its requests can be answered any more.
function M.drop_session(session_id)
  for _, req in ipairs(ledger.all()) do
    if req.sessionId == session_id then
      ledger.settle(req, "no longer asked (the turn ended)")
    end
  end
end

--- `:Dave permissions`: vim.ui.select for the oldest request of the current chat (else of any
--- chat); a proposal opens its diff tab. One menu at a time.
function M.pick()
  if menu.open() then
    return notify("dave: a permission prompt is open already")
  end
  local session = require("dave.sessions").peek()
  local req = (session and ledger.first(session.id)) or ledger.first(nil)
  if not req then
    return notify("dave: no permission request waits")
  end
  open_picker(req)
end

--- A key of the chat: action "allow", "allow_always", "deny" or "permissions" (the menu) on the
--- oldest request of the chat's session; "review" opens the diff tab of its oldest proposal.
---@param session_id string
---@param action string
function M.act(session_id, action)
  if action == "review" then
    local proposal = ledger.first(session_id, true)
    if not proposal then
      return notify("dave: no change in this chat waits for review")
    end
    return M.review(proposal)
  end
  local req = ledger.first(session_id)
  if not req then
    return notify("dave: nothing in this chat waits for an answer")
  end
  if ledger.reviewed(req) then -- a file change is decided on its diff, never unseen
    if action == "deny" then
      return M.reject(req)
    end
    return M.review(req)
  end
  if action == "permissions" then
    return open_picker(req)
  end
  if req.own then -- `gA` is as deliberate as `ga`
    return decide_own(req, action == "deny" and 2 or 1)
  end
  if req.questions then
    if action == "deny" then
      return questions.decline(req)
    end
    return questions.ask(req)
  end
  if req.plan then
    local choice = ({ allow = 1, allow_always = 2, deny = 3 })[action]
    return plan.decide(req, plan.CHOICES[choice])
  end
  decide(req, ({ allow = "allow", allow_always = "allowAlways", deny = "deny" })[action])
end

-- ------------------------------------------------------------------ proposals

--- The proposal request that `:Dave accept` / `:Dave reject` answer: the one whose diff tab
--- holds the current buffer, else the one being reviewed.
local function under_review()
  local req = require("dave.review").request_of(api.nvim_get_current_buf())
  if req and not req.ended then
    return req
  end
  if reviewing and not reviewing.ended then
    return reviewing
  end
end

--- Accepts a proposal: `allow` (always: `allowAlways`) with `editedContent` when the user
--- changed the proposal buffer. req: nil for the one being reviewed.
---@param req dave.PermissionRequest?
---@param always boolean?
function M.accept(req, always)
  req = req and not req.ended and req or under_review()
  if not req then
    return notify("dave: no change waits for review")
  end
  local edited = require("dave.review").edited(req)
  ledger.answer(req, always and "allowAlways" or "allow", "accepted", nil, edited)
end

--- Rejects a proposal, with a reason the model sees (asked with vim.ui.input; optional).
---@param req dave.PermissionRequest?
function M.reject(req)
  req = req and not req.ended and req or under_review()
  if not req then
    return notify("dave: no change waits for review")
  end
  menu.deny_with_reason(req, "Reason for rejecting (optional): ", "The user rejected this change.", "rejected")
end

--- Opens the diff tab of the change that waits for review (`:Dave review`). req: that one
--- (nil: the one on review, else the oldest waiting).
---@param req dave.PermissionRequest?
function M.review(req)
  req = req and not req.ended and req or under_review() or ledger.first(nil, true)
  if not req then
    return notify("dave: no change waits for review")
  end
  require("dave.review").show(req)
end

--- Ends a request without an answer from the user (a question the plugin asked itself that
--- was settled another way, e.g. `:Dave trust`); its block says outcome.
---@param req dave.PermissionRequest
---@param outcome string
function M.withdraw(req, outcome)
  req.decided = true
  ledger.settle(req, outcome)
end

--- How many requests wait for an answer.
function M.pending()
  return ledger.count()
end

return M
