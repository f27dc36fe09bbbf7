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
---@field input table? the tool's input, shown in full in the chat
---@field allowAlways {rule: string, label: string}? what "Allow always" would add (newer servers)
---@field title string? the chat's title
---@field chat dave.Chat? the chat the request is shown in
---@field block integer? the chat block's handle (Chat:add_block)
---@field ended boolean? answered or resolved elsewhere: a late answer is dropped
---@field prompt_win integer? a floating window the select UI opened
---@field proposal table? what a file tool would write (reviewed in a diff tab)
---@field questions table[]? the model's questions (AskUserQuestion)
---@field plan string? the plan of an ExitPlanMode request (markdown)
---@field plan_win integer? the float that shows the plan
---@field own dave.OwnQuestion? a question the plugin asks itself (folder trust): shown and
--- answered as a request, its answer never sent as `dave/permission`

---@class dave.OwnQuestion
---@field lines string[] the block shown in the chat (what is asked, in full)
---@field prompt string the menu's prompt (what is asked, in full)
---@field notice string the notification that it waits (short)
---@field choices {label: string, outcome: string}[] [1] for `ga`/`gA`, [2] for `gd`
---@field keys string[] what `ga` and `gd` do, for the block's key line
---@field decide fun(index: integer) called once, with the choice's index
---@field dropped fun()? called when the request ends unanswered (its turn was cancelled)

local pending = {} ---@type dave.PermissionRequest[] every request not answered yet, oldest first
local reviewing = nil ---@type dave.PermissionRequest? the proposal whose diff tab is on review
local picking = nil ---@type dave.PermissionRequest? the request whose vim.ui.select is open

local review_next, review_later

local function notify(message, level)
  vim.notify(message, level or vim.log.levels.INFO, { title = "dave" })
end

--- Whether the request is reviewed in a diff tab.
local function reviewed(req)
  return type(req.proposal) == "table" and config.options.review.diff
end

local function close_plan(req)
  if req.plan_win and api.nvim_win_is_valid(req.plan_win) then
    local buf = api.nvim_win_get_buf(req.plan_win)
    pcall(api.nvim_win_close, req.plan_win, true)
    pcall(api.nvim_buf_delete, buf, { force = true })
  end
  req.plan_win = nil
end

--- The request is over (answered here or resolved elsewhere): its prompt, plan float and diff
--- tab close, and its block in the chat says how it ended (outcome, when given).
local function settle(req, outcome)
  if req.ended then
    return
  end
  req.ended = true
  if req.own and not req.decided and req.own.dropped then
    vim.schedule(req.own.dropped)
  end
  close_plan(req)
  if req.proposal then
    require("dave.review").close(req)
  end
  for i = #pending, 1, -1 do
    if pending[i] == req then
      table.remove(pending, i)
    end
  end
  if picking == req then
    picking = nil
    if req.prompt_win and api.nvim_win_is_valid(req.prompt_win) then
      pcall(api.nvim_win_close, req.prompt_win, true)
    end
  end
  if req.chat and req.block and outcome then
    req.chat:set_block_hint(req.block, "→ " .. outcome)
  end
  if reviewing == req then
    reviewing = nil
    vim.schedule(review_next)
  end
end

--- Sends the answer and settles the request. extra: more params (`answers`, `permissionMode`).
local function answer(req, decision, outcome, reason, edited, extra)
  if req.ended then
    return
  end
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
  settle(req, outcome)
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

--- Deny, with a reason the model sees (asked with vim.ui.input; optional). prompt: the
--- input's prompt; fallback: the reason sent when none is typed.
local function deny_with_reason(req, prompt, fallback, outcome_word)
  vim.ui.input({ prompt = prompt }, function(reason)
    if req.ended then
      return
    end
    local given = reason and vim.trim(reason) ~= "" and reason or nil
    answer(req, "deny", given and ("%s: %s"):format(outcome_word, given) or outcome_word, given or fallback)
  end)
end

--- The decision of a plain request (allow, allowAlways or deny).
local function decide(req, decision)
  if decision == "allow" then
    answer(req, "allow", "allowed")
  elseif decision == "allowAlways" then
    local rule = type(req.allowAlways) == "table" and req.allowAlways.rule
    answer(req, "allowAlways", rule and ("allowed always: " .. rule) or "allowed always")
  elseif decision == "deny" then
    deny_with_reason(req, "Reason for denying (optional): ", "The user denied this.", "denied")
  end
end

--- vim.ui.select for a request the user chose to answer; an asynchronous select UI's floating
--- window is remembered, to be closed if the request ends before the user answers. Dismissing
--- it answers nothing: the request still waits.
local function select(req, items, opts, on_done)
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

local function header_of(question)
  return type(question.header) == "string" and question.header ~= "" and ("[%s] "):format(question.header) or ""
end

--- Asks one question: cb(answer) with a label, a list of labels (multiSelect) or the user's own
--- words. Dismissing leaves the request waiting.
local function ask_question(req, question, cb)
  local descriptions = {}
  for _, option in ipairs(type(question.options) == "table" and question.options or {}) do
    if type(option) == "table" and type(option.label) == "string" then
      descriptions[option.label] = option.description
    end
  end
  local text = tostring(question.question or "")
  local header = header_of(question)
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
        return other(function(words)
          if words then
            cb(words)
          end
        end)
      end
      if choice then
        cb(choice)
      end
    end)
  end
  local chosen = {}
  local function round()
    if req.ended then
      return
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
        return
      elseif choice == DONE then
        if #chosen > 0 then
          cb(chosen)
        end
        return
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

local function answer_text(value)
  return type(value) == "table" and table.concat(value, ", ") or tostring(value)
end

--- The model's questions, asked one after another; the answers go in one `allow`.
local function ask_questions(req)
  local answers, said = {}, {}
  local i = 0
  local function next_question()
    if req.ended then
      return
    end
    i = i + 1
    local question = req.questions[i]
    if not question then
      return answer(req, "allow", "answered: " .. table.concat(said, "; "), nil, nil, { answers = answers })
    end
    ask_question(req, question, function(value)
      if req.ended then
        return
      end
      answers[tostring(question.question)] = value
      table.insert(said, answer_text(value))
      vim.schedule(next_question)
    end)
  end
  next_question()
end

--- The plan in a markdown float (not entered), while its approval is asked.
local function show_plan(req)
  close_plan(req)
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

--- A plan's decision: approve (into the default mode or acceptEdits) or keep planning with
--- the user's feedback.
local function decide_plan(req, choice)
  if choice == M.PLAN_CHOICES[1] then
    answer(req, "allow", "approved")
  elseif choice == M.PLAN_CHOICES[2] then
    answer(req, "allow", "approved; edits are accepted from now on", nil, nil, { permissionMode = "acceptEdits" })
  elseif choice == M.PLAN_CHOICES[3] then
    close_plan(req)
    deny_with_reason(req, "What should change in the plan? ", "Keep planning.", "keep planning")
  end
end

--- An ExitPlanMode request: the plan in a float while vim.ui.select asks for the decision.
local function ask_plan(req)
  show_plan(req)
  local prompt = (req.title and ("[%s] "):format(req.title) or "") .. "Approve the plan?"
  select(req, M.PLAN_CHOICES, { prompt = prompt, kind = "dave.plan" }, function(choice)
    if not choice then
      return close_plan(req)
    end
    decide_plan(req, choice)
  end)
end

--- The server words the question (`Allow Write notes.txt?`); only an older server's request
--- without one gets the bare tool name.
local function question_of(req)
  return (type(req.message) == "string" and req.message ~= "") and req.message
    or ("Allow " .. tostring(req.toolName or "this tool") .. "?")
end

--- The user's answer to a question the plugin asks itself: the block says which, then its
--- owner acts on it.
local function decide_own(req, index)
  local choice = req.own.choices[index]
  if req.ended or not choice then
    return
  end
  req.decided = true
  settle(req, choice.outcome)
  req.own.decide(index)
end

--- Opens vim.ui.select (or, for a proposal, the diff tab) for the request.
local function open_picker(req)
  if reviewed(req) then
    return M.review(req)
  end
  if req.own then
    local labels = vim.tbl_map(function(c)
      return c.label
    end, req.own.choices)
    return select(req, labels, { prompt = req.own.prompt, kind = "dave.confirm" }, function(_, index)
      if index then
        decide_own(req, index)
      end
    end)
  end
  if req.questions then
    return ask_questions(req)
  end
  if req.plan then
    return ask_plan(req)
  end
  local prompt = question_of(req)
  if req.title then
    prompt = ("[%s] %s"):format(req.title, prompt)
  end
  local choices, decisions = M.choices(req)
  select(req, choices, { prompt = prompt, kind = "dave.permission" }, function(choice)
    if choice then
      decide(req, decisions[choice])
    end
  end)
end

-- ------------------------------------------------------------------ the block in the chat

--- The keys of the chat that answer, as `ga allow`; actions whose key is unset are left out.
--- command: the command that does it from anywhere (default `:Dave permissions`).
local function key_hint(pairs_, command)
  local keys = config.options.keymaps
  local out = {}
  for _, pair in ipairs(pairs_) do
    local lhs = keys[pair[1]]
    if type(lhs) == "table" then
      lhs = lhs[1]
    end
    if lhs then
      table.insert(out, ("%s %s"):format(lhs, pair[2]))
    end
  end
  table.insert(out, command or ":Dave permissions")
  return table.concat(out, " · ")
end

--- A value of the tool's input as lines (a string as it is, anything else as JSON).
local function value_lines(value)
  if type(value) == "string" then
    return vim.split(value, "\n", { plain = true })
  end
  local ok, json = pcall(vim.json.encode, value)
  return { ok and json or vim.inspect(value) }
end

--- The tool's input in full, in a fenced block: Bash its command, others `key: value` lines.
local function input_lines(req)
  local input = type(req.input) == "table" and req.input or nil
  if not input or next(input) == nil then
    return {}
  end
  local lines = {}
  if req.toolName == "Bash" and type(input.command) == "string" then
    table.insert(lines, "```sh")
    vim.list_extend(lines, value_lines(input.command))
    table.insert(lines, "```")
    if type(input.description) == "string" and input.description ~= "" then
      table.insert(lines, "_" .. input.description:gsub("\n", " ") .. "_")
    end
    return lines
  end
  table.insert(lines, "```")
  local names = vim.tbl_keys(input)
  table.sort(names)
  for _, name in ipairs(names) do
    local value = value_lines(input[name])
    if #value == 1 then
      table.insert(lines, ("%s: %s"):format(name, value[1]))
    else
      table.insert(lines, name .. ":")
      vim.list_extend(lines, value)
    end
  end
  table.insert(lines, "```")
  return lines
end

--- ` +3 -1`: the lines a proposal's unified diff adds and removes ("" without a diff).
local function diff_counts(proposal)
  local diff = type(proposal.diff) == "string" and proposal.diff or ""
  if diff == "" then
    return ""
  end
  local added, removed = 0, 0
  for line in vim.gsplit(diff, "\n", { plain = true }) do
    local c = line:sub(1, 1)
    if c == "+" and not vim.startswith(line, "+++ ") then
      added = added + 1
    elseif c == "-" and not vim.startswith(line, "--- ") then
      removed = removed + 1
    end
  end
  return (" +%d -%d"):format(added, removed)
end

--- What a proposal's block says about the file: `notes.txt (new file) +1 -0`.
local function proposal_summary(proposal)
  local what = proposal.binary and " (binary: no diff)"
    or (proposal.exists == false and " (new file)" or "")
  local cut = proposal.truncated and " (large: the tab shows the diff only)" or ""
  return ("%s%s%s%s"):format(config.relative(tostring(proposal.path)), what, diff_counts(proposal), cut)
end

--- The block that shows the request in its chat, and the line of keys under it.
local function block_of(req)
  if req.own then
    local keys = req.own.keys
    return req.own.lines, key_hint({ { "allow", keys[1] }, { "deny", keys[2] }, { "permissions", "menu" } })
  end
  if reviewed(req) then
    local lines = { ("**? %s**"):format(question_of(req)), proposal_summary(req.proposal) }
    return lines, key_hint({ { "review", "review the diff" }, { "deny", "reject" } }, ":Dave review")
  end
  if req.questions then
    local lines = {}
    for _, question in ipairs(req.questions) do
      table.insert(lines, ("**? %s%s**"):format(header_of(question), tostring(question.question or "")))
      for n, option in ipairs(type(question.options) == "table" and question.options or {}) do
        if type(option) == "table" then
          local d = type(option.description) == "string" and option.description ~= ""
            and (" — " .. option.description) or ""
          table.insert(lines, ("%d. %s%s"):format(n, tostring(option.label), d))
        end
      end
    end
    return lines, key_hint({ { "allow", "answer" }, { "deny", "decline" } })
  end
  if req.plan then
    local lines = { "**? Approve the plan?**", "" }
    local plan = req.plan ~= "" and req.plan or "(the model wrote no plan)"
    vim.list_extend(lines, vim.split(plan, "\n", { plain = true }))
    table.insert(lines, "")
    return lines, key_hint({ { "allow", "approve" }, { "allow_always", "approve and accept edits" },
      { "deny", "keep planning" } })
  end
  local lines = { ("**? %s**"):format(question_of(req)) }
  vim.list_extend(lines, input_lines(req))
  local always = M.choices(req)[2]:gsub("^" .. ALWAYS, "allow always")
  return lines, key_hint({ { "allow", "allow" }, { "allow_always", always }, { "deny", "deny" },
    { "permissions", "menu" } })
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
review_later = function(req)
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
  reviewing = nil
  for _, req in ipairs(pending) do
    if reviewed(req) then
      reviewing = req
      return review_later(req)
    end
  end
end

--- Takes a `permissionRequest` report: shown in its chat (a proposal also queued for review).
---@param req dave.PermissionRequest
function M.ask(req)
  table.insert(pending, req)
  if req.chat then
    local lines, hint = block_of(req)
    req.block = req.chat:add_block(lines, hint)
  end
  if reviewed(req) then
    if config.options.review.open ~= "auto" then
      review_note(req)
    end
    vim.schedule(review_next)
  else
    local title = req.title and ("[%s] "):format(req.title) or ""
    local what = req.questions and "the model asks you" or req.plan and "the plan waits for approval"
      or req.own and req.own.notice or question_of(req)
    notify(("dave: %s%s — answer in the chat, or :Dave permissions"):format(title, what))
  end
  announce(req)
end

--- A request ended (`permissionResolved`): its block says so, its prompt is closed.
---@param request_id string
---@param value table? the permissionResolved report (decision, by)
function M.resolved(request_id, value)
  for _, req in ipairs(vim.list_slice(pending)) do
    if req.requestId == request_id then
      local outcome = "no longer asked"
      if value and value.decision then
        local word = value.decision == "allow" and "allowed" or "denied"
        outcome = ("%s (%s)"):format(word, tostring(value.by or "server"))
      end
      settle(req, outcome)
    end
  end
end

--- A query of the session ended: none of its requests can be answered any more.
function M.drop_session(session_id)
  for _, req in ipairs(vim.list_slice(pending)) do
    if req.sessionId == session_id then
      settle(req, "no longer asked (the turn ended)")
    end
  end
end

--- The oldest request waiting in the session (nil: any session).
---@param session_id string?
---@return dave.PermissionRequest?
local function first_pending(session_id)
  for _, req in ipairs(pending) do
    if not req.ended and (session_id == nil or req.sessionId == session_id) then
      return req
    end
  end
end

--- `:Dave permissions`: vim.ui.select for the oldest request of the current chat (else of any
--- chat); a proposal opens its diff tab. One menu at a time.
function M.pick()
  if picking and not picking.ended then
    return notify("dave: a permission prompt is open already")
  end
  local session = require("dave.sessions").peek()
  local req = (session and first_pending(session.id)) or first_pending(nil)
  if not req then
    return notify("dave: no permission request waits")
  end
  open_picker(req)
end

--- The oldest proposal waiting in the session (nil: any session).
---@param session_id string?
local function first_proposal(session_id)
  for _, req in ipairs(pending) do
    if not req.ended and (session_id == nil or req.sessionId == session_id) and reviewed(req) then
      return req
    end
  end
end

--- A key of the chat: action "allow", "allow_always", "deny" or "permissions" (the menu) on the
--- oldest request of the chat's session; "review" opens the diff tab of its oldest proposal.
---@param session_id string
---@param action string
function M.act(session_id, action)
  if action == "review" then
    local proposal = first_proposal(session_id)
    if not proposal then
      return notify("dave: no change in this chat waits for review")
    end
    return M.review(proposal)
  end
  local req = first_pending(session_id)
  if not req then
    return notify("dave: nothing in this chat waits for an answer")
  end
  if reviewed(req) then -- a file change is decided on its diff, never unseen
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
      return answer(req, "deny", "declined", "The user declined to answer.")
    end
    return ask_questions(req)
  end
  if req.plan then
    local choice = ({ allow = 1, allow_always = 2, deny = 3 })[action]
    return decide_plan(req, M.PLAN_CHOICES[choice])
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
  answer(req, always and "allowAlways" or "allow", "accepted", nil, edited)
end

--- Rejects a proposal, with a reason the model sees (asked with vim.ui.input; optional).
---@param req dave.PermissionRequest?
function M.reject(req)
  req = req and not req.ended and req or under_review()
  if not req then
    return notify("dave: no change waits for review")
  end
  deny_with_reason(req, "Reason for rejecting (optional): ", "The user rejected this change.", "rejected")
end

--- Opens the diff tab of the change that waits for review (`:Dave review`). req: that one
--- (nil: the one on review, else the oldest waiting).
---@param req dave.PermissionRequest?
function M.review(req)
  req = req and not req.ended and req or under_review() or first_proposal(nil)
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
  settle(req, outcome)
end

--- How many requests wait for an answer.
function M.pending()
  return #pending
end

return M
