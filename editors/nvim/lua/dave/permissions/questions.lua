--- The model's questions (AskUserQuestion): asked one after another with vim.ui.select (kind
--- `dave.question`; a multiSelect question round by round, `Other…` for the user's own words);
--- the answers go in one `allow`.
local ledger = require("dave.permissions.ledger")
local menu = require("dave.permissions.menu")

local M = {}

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

--- `[Header] ` of a question ("" without one).
function M.header_of(question)
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
  local header = M.header_of(question)
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
    return menu.select(req, items, opts, function(choice)
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
    menu.select(req, items, {
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
---@param req dave.PermissionRequest
function M.ask(req)
  local answers, said = {}, {}
  local i = 0
  local function next_question()
    if req.ended then
      return
    end
    i = i + 1
    local question = req.questions[i]
    if not question then
      return ledger.answer(req, "allow", "answered: " .. table.concat(said, "; "), nil, nil, { answers = answers })
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

--- Declines to answer (`gd` in the chat).
---@param req dave.PermissionRequest
function M.decline(req)
  ledger.answer(req, "deny", "declined", "The user declined to answer.")
end

return M
