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
---@field questions table[]? the model's questions (AskUserQuestion)
---@field plan string? the plan of an ExitPlanMode request (markdown)
---@field plan_win integer? the float that shows the plan

local queue = {} ---@type dave.PermissionRequest[]
local active = nil ---@type dave.PermissionRequest?

local show_next

local function notify(message, level)
  vim.notify(message, level or vim.log.levels.INFO, { title = "dave" })
end

--- extra: more params of the answer (`answers`, `permissionMode`).
local function answer(req, decision, reason, edited, extra)
  if req.ended then
    return
  end
  req.ended = true
  client.request("dave/permission", vim.tbl_extend("force", extra or {}, {
    requestId = req.requestId,
    decision = decision,
    reason = reason,
    editedContent = edited,
  }), function(err)
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

--- vim.ui.select for a request; an asynchronous select UI's floating window is remembered, to
--- be closed if the request ends before the user answers.
local function select(req, items, opts, on_done)
  local before = api.nvim_get_current_win()
  vim.ui.select(items, opts, on_done)
  local win = api.nvim_get_current_win()
  if active == req and not req.ended and win ~= before and api.nvim_win_get_config(win).relative ~= "" then
    req.prompt_win = win
  end
end

local OTHER, DONE = "Other…", "Done"

local function labels_of(question)
  local labels = {}
  for _, option in ipairs(type(question.options) == "table" and question.options or {}) do
    if type(option) == "table" and type(option.label) == "string" then
      table.insert(labels, option.label)
    end
  end
  return labels
end

--- Asks one question: cb(answer) with a label, a list of labels (multiSelect) or the user's own
--- words; cb(nil) when dismissed.
local function ask_question(req, question, cb)
  local descriptions = {}
  for _, option in ipairs(type(question.options) == "table" and question.options or {}) do
    if type(option) == "table" and type(option.label) == "string" then
      descriptions[option.label] = option.description
    end
  end
  local text = tostring(question.question or "")
  local header = type(question.header) == "string" and question.header ~= "" and ("[%s] "):format(question.header)
    or ""
  local function format(item)
    local d = descriptions[item]
    return (type(d) == "string" and d ~= "") and ("%s — %s"):format(item, d) or item
  end
  local function other(done)
    vim.ui.input({ prompt = text .. " " }, function(words)
      done((words and vim.trim(words) ~= "") and words or nil)
    end)
  end
  if not question.multiSelect then
    local items = labels_of(question)
    table.insert(items, OTHER)
    local opts = { prompt = header .. text, kind = "dave.question", format_item = format }
    return select(req, items, opts, function(choice)
      if choice == OTHER then
        return other(cb)
      end
      cb(choice)
    end)
  end
  local chosen = {}
  local function round()
    if req.ended then
      return cb(nil)
    end
    local items = vim.tbl_filter(function(label)
      return not vim.tbl_contains(chosen, label)
    end, labels_of(question))
    table.insert(items, OTHER)
    table.insert(items, DONE)
    local so_far = #chosen > 0 and (" (chosen: %s)"):format(table.concat(chosen, ", ")) or ""
    select(req, items, {
      prompt = header .. text .. so_far,
      kind = "dave.question",
      format_item = format,
    }, function(choice)
      if choice == nil then
        return cb(nil)
      elseif choice == DONE then
        return cb(#chosen > 0 and chosen or nil)
      elseif choice == OTHER then
        return other(function(words)
          if words then
            table.insert(chosen, words)
          end
          round()
        end)
      end
      table.insert(chosen, choice)
      round()
    end)
  end
  round()
end

--- The model's questions, asked one after another; the answers go in one `allow`. Dismissing
--- any question declines them all (deny).
local function ask_questions(req)
  local answers = {}
  local i = 0
  local function next_question()
    if req.ended then
      return finish(req)
    end
    i = i + 1
    local question = req.questions[i]
    if not question then
      answer(req, "allow", nil, nil, { answers = answers })
      return finish(req)
    end
    ask_question(req, question, function(value)
      if req.ended then
        return finish(req)
      end
      if value == nil then
        answer(req, "deny", "The user declined to answer.")
        return finish(req)
      end
      answers[tostring(question.question)] = value
      vim.schedule(next_question)
    end)
  end
  next_question()
end

local function close_plan(req)
  if req.plan_win and api.nvim_win_is_valid(req.plan_win) then
    local buf = api.nvim_win_get_buf(req.plan_win)
    pcall(api.nvim_win_close, req.plan_win, true)
    pcall(api.nvim_buf_delete, buf, { force = true })
  end
  req.plan_win = nil
end

--- The plan in a markdown float (not entered), while its approval is asked.
local function show_plan(req)
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

M.PLAN_CHOICES = { "Approve", "Approve and accept edits", "Keep planning" }

--- An ExitPlanMode request: the plan is shown, then approved (into the default mode or
--- acceptEdits) or sent back with feedback.
local function ask_plan(req)
  show_plan(req)
  local prompt = (req.title and ("[%s] "):format(req.title) or "") .. "Approve the plan?"
  select(req, M.PLAN_CHOICES, { prompt = prompt, kind = "dave.plan" }, function(choice)
    if req.ended then
      close_plan(req)
      return finish(req)
    end
    if choice == M.PLAN_CHOICES[1] then
      answer(req, "allow")
    elseif choice == M.PLAN_CHOICES[2] then
      answer(req, "allow", nil, nil, { permissionMode = "acceptEdits" })
    elseif choice == M.PLAN_CHOICES[3] then
      return vim.ui.input({ prompt = "What should change in the plan? " }, function(feedback)
        close_plan(req)
        answer(req, "deny", (feedback and vim.trim(feedback) ~= "") and feedback or "Keep planning.")
        finish(req)
      end)
    else
      answer(req, "deny", "The user dismissed the plan; keep planning.")
    end
    close_plan(req)
    finish(req)
  end)
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
  if req.questions then
    return ask_questions(req)
  end
  if req.plan then
    return ask_plan(req)
  end
  -- The server words the question (`Allow Write notes.txt?`); only an older server's request
  -- without one gets the bare tool name.
  local prompt = (type(req.message) == "string" and req.message ~= "") and req.message
    or ("Allow " .. tostring(req.toolName or "this tool") .. "?")
  if req.title then
    prompt = ("[%s] %s"):format(req.title, prompt)
  end
  local choices, decisions = M.choices(req)
  select(req, choices, { prompt = prompt, kind = "dave.permission" }, function(choice)
    on_choice(req, choice and decisions[choice])
  end)
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
  close_plan(req)
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
