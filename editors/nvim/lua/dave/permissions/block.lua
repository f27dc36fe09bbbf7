--- A request in words: its question, its choices, and the block that shows it in its chat
--- (what is asked, in full, and the line of keys that answer it).
local config = require("dave.config")
local ledger = require("dave.permissions.ledger")
local questions = require("dave.permissions.questions")

local M = {}

local ALLOW, ALWAYS, DENY = "Allow", "Allow always", "Deny"

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

--- The server words the question (`Allow Write notes.txt?`); only an older server's request
--- without one gets the bare tool name.
function M.question_of(req)
  return (type(req.message) == "string" and req.message ~= "") and req.message
    or ("Allow " .. tostring(req.toolName or "this tool") .. "?")
end

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
---@param req dave.PermissionRequest
---@return string[] lines, string hint
function M.of(req)
  if req.own then
    local keys = req.own.keys
    return req.own.lines, key_hint({ { "allow", keys[1] }, { "deny", keys[2] }, { "permissions", "menu" } })
  end
  if ledger.reviewed(req) then
    local lines = { ("**? %s**"):format(M.question_of(req)), proposal_summary(req.proposal) }
    return lines, key_hint({ { "review", "review the diff" }, { "deny", "reject" } }, ":Dave review")
  end
  if req.questions then
    local lines = {}
    for _, question in ipairs(req.questions) do
      table.insert(lines, ("**? %s%s**"):format(questions.header_of(question), tostring(question.question or "")))
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
  local lines = { ("**? %s**"):format(M.question_of(req)) }
  vim.list_extend(lines, input_lines(req))
  local always = M.choices(req)[2]:gsub("^" .. ALWAYS, "allow always")
  return lines, key_hint({ { "allow", "allow" }, { "allow_always", always }, { "deny", "deny" },
    { "permissions", "menu" } })
end

return M
