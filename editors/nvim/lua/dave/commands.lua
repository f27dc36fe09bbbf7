--- `:Dave [subcommand] [args]`: parsing and completion.
local M = {}

--- A turn number argument (nil: none given); false after saying it is no turn number.
function M.turn_arg(name, args)
  local turn = tonumber(args)
  if args ~= "" and not (turn and turn >= 1 and turn == math.floor(turn)) then
    vim.notify(("dave: :Dave %s takes a turn number (1, 2, ...), not %q"):format(name, args), vim.log.levels.ERROR)
    return false
  end
  return turn
end

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
  delete = function(_, opts)
    require("dave").delete(opts.bang)
  end,
  permissions = function()
    require("dave").permissions()
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
  install = function(args, opts)
    if args ~= "" then
      return vim.notify(("dave: :Dave install takes no argument (`:Dave install!` reinstalls), not %q"):format(args),
        vim.log.levels.ERROR)
    end
    require("dave.install").run(opts.bang)
  end,
  toggle = function()
    require("dave").toggle()
  end,
  accept = function(args)
    if args ~= "" and args ~= "always" then
      return vim.notify(("dave: :Dave accept takes no argument but `always`, not %q"):format(args),
        vim.log.levels.ERROR)
    end
    require("dave").accept(args == "always")
  end,
  reject = function()
    require("dave").reject()
  end,
  review = function()
    require("dave").review()
  end,
  changes = function(args)
    local turn = M.turn_arg("changes", args)
    if turn ~= false then
      require("dave").changes(turn)
    end
  end,
  undo = function(args)
    require("dave").undo(vim.split(args, "%s+", { trimempty = true }))
  end,
  rewind = function(args, opts)
    local turn = M.turn_arg("rewind", args)
    if turn ~= false then
      require("dave.rewind").rewind(turn, not opts.bang)
    end
  end,
  fork = function(args)
    local turn = M.turn_arg("fork", args)
    if turn ~= false then
      require("dave.rewind").fork(turn)
    end
  end,
  unqueue = function(args)
    local index = tonumber(args)
    if args ~= "" and not (index and index >= 1 and index == math.floor(index)) then
      return vim.notify(("dave: :Dave unqueue takes a queued prompt's number (1, 2, ...), not %q"):format(args),
        vim.log.levels.ERROR)
    end
    require("dave").unqueue(index)
  end,
  model = function(args)
    require("dave").model(args)
  end,
  mode = function(args)
    require("dave").mode(args)
  end,
  trust = function(args)
    if args ~= "" then
      return vim.notify(("dave: :Dave trust takes no argument (it trusts the chat's folder), not %q"):format(args),
        vim.log.levels.ERROR)
    end
    require("dave").trust(true)
  end,
  untrust = function(args)
    if args ~= "" then
      return vim.notify(("dave: :Dave untrust takes no argument (it is about the chat's folder), not %q"):format(args),
        vim.log.levels.ERROR)
    end
    require("dave").trust(false)
  end,
}

--- Completion of a subcommand's arguments.
local arguments = {
  accept = function(arglead)
    return vim.startswith("always", arglead) and { "always" } or {}
  end,
  ask = function(arglead)
    return require("dave.context").complete_word(arglead)
  end,
  undo = function(arglead)
    return require("dave.changes").complete_files(require("dave.sessions").peek(), arglead)
  end,
  mode = function(arglead)
    return vim.tbl_filter(function(mode)
      return vim.startswith(mode, arglead)
    end, { "default", "acceptEdits", "plan", "bypassPermissions" })
  end,
}

M.names = vim.tbl_keys(subcommands)
table.sort(M.names)

--- Runs `:Dave` with the user-command opts.
function M.run(opts)
  local name, rest = opts.args:match("^%s*(%S*)%s*(.-)%s*$")
  if name:sub(-1) == "!" then -- `:Dave delete!` (as `:Dave! delete`)
    name = name:sub(1, -2)
    opts = vim.tbl_extend("force", opts, { bang = true })
  end
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

--- Completes the subcommand name, and the arguments of `accept` and `undo`.
function M.complete(arglead, cmdline)
  local before = cmdline:match("^%S*%s+(.*)$") or ""
  if before:find("%s") then
    local complete = arguments[before:match("^(%S+)")]
    return complete and complete(arglead) or {}
  end
  return vim.tbl_filter(function(name)
    return vim.startswith(name, arglead)
  end, M.names)
end

return M
