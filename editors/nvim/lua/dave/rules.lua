--- A chat's "allow always" rules: `dave/listRules` shows them with vim.ui.select, and the
--- one picked is removed with `dave/removeRule`.
local client = require("dave.client")

local M = {}

local INVALID_PARAMS = -32602

local function notify(message, level)
  vim.notify(message, level or vim.log.levels.INFO, { title = "dave" })
end

--- `2026-11-29T10:22:31Z` -> `2026-11-29 10:22 UTC`: enough to tell rules apart.
local function created(at)
  if type(at) ~= "string" then
    return "?"
  end
  local day, time = at:match("^(%d+%-%d+%-%d+)T(%d+:%d+)")
  return day and ("%s %s UTC"):format(day, time) or at
end

--- One line per rule: the rule, what it covers, when it was added.
function M.format(rule)
  local label = type(rule.label) == "string" and rule.label ~= "" and (" — " .. rule.label) or ""
  return ("%s%s (added %s)"):format(rule.rule, label, created(rule.createdAt))
end

local function remove(session, rule)
  client.request("dave/removeRule", { sessionId = session.id, rule = rule.rule }, function(err, result)
    if err then
      return notify("dave: the rule was not removed: " .. tostring(err.message), vim.log.levels.WARN)
    end
    if result and result.removed then
      notify(("dave: removed the rule %s from %s; it asks again"):format(rule.rule, session.chat.title))
    else
      notify(("dave: %s had no rule %s"):format(session.chat.title, rule.rule))
    end
  end)
end

local function pick(session, rules)
  if #rules == 0 then
    return notify(("dave: no rules in %s"):format(session.chat.title))
  end
  vim.ui.select(rules, {
    prompt = ("Rules of %s (pick one to remove)"):format(session.chat.title),
    kind = "dave.rule",
    format_item = M.format,
  }, function(rule)
    if rule then
      remove(session, rule)
    end
  end)
end

--- Lists the session's rules; the one the user picks is removed.
---@param session dave.Session
function M.manage(session)
  client.with_client(function(c, start_err)
    if not c then
      return notify(start_err or "dave: the server is not running", vim.log.levels.WARN)
    end
    if not client.supports("dave/listRules") then
      return notify("dave: this server does not list rules; update dave-lsp", vim.log.levels.WARN)
    end
    client.request("dave/listRules", { sessionId = session.id }, function(err, result)
      -- A chat that has not asked anything yet is no server session, so it has no rules.
      if err and err.code == INVALID_PARAMS and #session.transcript == 0 and not session.query then
        return pick(session, {})
      end
      if err then
        return notify("dave: the server did not list the rules: " .. tostring(err.message), vim.log.levels.WARN)
      end
      local rules = vim.tbl_filter(function(r)
        return type(r) == "table" and type(r.rule) == "string"
      end, result and result.rules or {})
      pick(session, rules)
    end)
  end)
end

return M
