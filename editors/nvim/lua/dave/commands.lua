--- `:Dave [subcommand] [args]`: parsing and completion.
local M = {}

---@type table<string, fun(args: string, opts: table)>
local subcommands = {
  ask = function(args, opts)
    local range = opts.range > 0 and { buf = vim.api.nvim_get_current_buf(), line1 = opts.line1, line2 = opts.line2 }
      or nil
    require("dave").ask(args, range)
  end,
  cancel = function()
    require("dave").cancel()
  end,
  new = function()
    require("dave").new()
  end,
  delete = function()
    require("dave").delete()
  end,
  sessions = function()
    require("dave").sessions()
  end,
  rules = function()
    require("dave").rules()
  end,
  restart = function()
    require("dave").restart()
  end,
  toggle = function()
    require("dave").toggle()
  end,
}

M.names = vim.tbl_keys(subcommands)
table.sort(M.names)

--- Runs `:Dave` with the user-command opts.
function M.run(opts)
  local name, rest = opts.args:match("^%s*(%S*)%s*(.-)%s*$")
  if name == "" then
    name = opts.range > 0 and "ask" or "toggle"
  end
  local fn = subcommands[name]
  if not fn then
    vim.notify(
      ("dave: unknown subcommand %q; try one of: %s"):format(name, table.concat(M.names, ", ")),
      vim.log.levels.ERROR
    )
    return
  end
  fn(rest, opts)
end

--- Completes the subcommand name (the first argument only).
function M.complete(arglead, cmdline)
  local before = cmdline:match("^%S*%s+(.*)$") or ""
  if before:find("%s") then
    return {}
  end
  return vim.tbl_filter(function(name)
    return vim.startswith(name, arglead)
  end, M.names)
end

return M
