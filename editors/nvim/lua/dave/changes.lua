--- A turn's file changes: `:Dave changes [turn]` lists them (`dave/changes`) in the quickfix
--- list and shows the first file's diff; `:Dave undo [file...]` reverts them
--- (`dave/revertChanges`) and reloads the buffers.
local client = require("dave.client")
local config = require("dave.config")

local M = {}

local INVALID_PARAMS = -32602

local function notify(message, level)
  vim.notify(message, level or vim.log.levels.INFO, { title = "dave" })
end

--- Calls fn() once the server is up and has the method; says why not otherwise.
function M.with_method(method, fn)
  client.with_client(function(c, start_err)
    if not c then
      return notify(start_err or "dave: the server is not running", vim.log.levels.WARN)
    end
    if not client.supports(method) then
      return notify(("dave: this server has no %s; update dave-lsp"):format(method), vim.log.levels.WARN)
    end
    fn()
  end)
end

--- A chat that never asked anything is no server session yet: it has no changes.
local function unknown_session(session, err)
  return err and err.code == INVALID_PARAMS and #session.transcript == 0 and not session.query
end

--- The first changed line of the new side of a unified diff (1 when there is none).
local function first_line(diff)
  if type(diff) ~= "string" then
    return 1
  end
  local start = diff:match("\n@@ %-%d+,?%d* %+(%d+)") or diff:match("^@@ %-%d+,?%d* %+(%d+)")
  return math.max(1, tonumber(start) or 1)
end

--- ` +3 -1`: the lines a file's change added and removed ("" when the server sent no counts).
function M.counts(file)
  if type(file.added) ~= "number" or type(file.removed) ~= "number" then
    return ""
  end
  return (" +%d -%d"):format(file.added, file.removed)
end

--- One quickfix entry of a changed file: `modified +3 -1`.
function M.qf_item(file, turn)
  local flags = {}
  for _, flag in ipairs({ "binary", "truncated" }) do
    if file[flag] == true then
      table.insert(flags, flag)
    end
  end
  local text = tostring(file.status) .. M.counts(file)
    .. (#flags > 0 and (" (" .. table.concat(flags, ", ") .. ")") or "")
  return {
    filename = tostring(file.path),
    lnum = file.status == "deleted" and 1 or first_line(file.diff),
    text = text,
    user_data = { turn = turn, path = file.path },
  }
end

--- `:Dave changes [turn]`: the turn's files in the quickfix list, the first one's diff in a tab.
---@param session dave.Session
---@param turn integer?
function M.show(session, turn)
  M.with_method("dave/changes", function()
    client.request("dave/changes", { sessionId = session.id, turn = turn }, function(err, result)
      if unknown_session(session, err) then
        return notify(("dave: no changes in %s yet"):format(session.chat.title))
      end
      if err then
        return notify("dave: the server did not list the changes: " .. tostring(err.message), vim.log.levels.WARN)
      end
      local files = type(result) == "table" and type(result.files) == "table" and result.files or {}
      local shown = type(result.turn) == "number" and result.turn or nil
      if not shown or #files == 0 then
        return notify(turn and ("dave: turn %d of %s changed no files"):format(turn, session.chat.title)
          or ("dave: no changes in %s yet"):format(session.chat.title))
      end
      session.changes = files
      local items = vim.tbl_map(function(file)
        return M.qf_item(file, shown)
      end, files)
      vim.fn.setqflist({}, " ", {
        title = ("Dave changes: %s, turn %d"):format(session.chat.title, shown),
        items = items,
      })
      require("dave.review").show_change(files[1], shown)
      notify(("dave: turn %d changed %d file%s (quickfix list: :copen); :Dave undo reverts the last turn's"):format(
        shown,
        #files,
        #files == 1 and "" or "s"
      ))
    end)
  end)
end

--- `%` stands for the current buffer's file; other paths go as typed (the server takes them
--- absolute or relative to the session's folder), with `~` expanded.
local function resolve(arg)
  if arg == "%" then
    return vim.api.nvim_buf_get_name(0)
  end
  return vim.fs.normalize(arg)
end

--- `:Dave undo [file...]`: reverts the last turn that changed files (only those files when
--- given), then reloads open buffers.
---@param session dave.Session
---@param args string[]
function M.undo(session, args)
  local paths = #args > 0 and vim.tbl_map(resolve, args) or nil
  M.with_method("dave/revertChanges", function()
    client.request("dave/revertChanges", { sessionId = session.id, paths = paths }, function(err, result)
      if unknown_session(session, err) then
        return notify(("dave: no changes in %s to undo"):format(session.chat.title))
      end
      if err then
        return notify("dave: nothing was reverted: " .. tostring(err.message), vim.log.levels.WARN)
      end
      pcall(vim.cmd, "silent! checktime")
      local reverted = type(result) == "table" and type(result.reverted) == "table" and result.reverted or {}
      local conflicts = type(result) == "table" and type(result.conflicts) == "table" and result.conflicts or {}
      local names = vim.tbl_map(function(path)
        return config.relative(tostring(path))
      end, reverted)
      if #names > 0 then
        local line = "↶ reverted " .. table.concat(names, ", ")
        notify("dave: " .. line:sub(#"↶ " + 1))
        session.chat:append_note(line)
      elseif #conflicts == 0 then
        notify("dave: nothing to revert")
      end
      for _, conflict in ipairs(conflicts) do
        notify(("dave: %s not reverted: %s"):format(
          config.relative(tostring(conflict.path)),
          tostring(conflict.message)
        ), vim.log.levels.WARN)
      end
    end)
  end)
end

--- Completion of `:Dave undo`: the files of the current chat's last changes.
function M.complete_files(session, arglead)
  local names = {}
  for _, file in ipairs(session and session.changes or {}) do
    local name = config.relative(tostring(file.path))
    if vim.startswith(name, arglead) then
      table.insert(names, name)
    end
  end
  return names
end

return M
