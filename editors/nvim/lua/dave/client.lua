--- The one dave-lsp client of this Neovim: starts the server through vim.lsp (attached to no
--- buffer), waits for `initialize`, and routes `$/progress` by work-done token.
local config = require("dave.config")

local M = {}

local NAME = "dave"
M.PROTOCOL_VERSION = 1

local compat = require("dave.compat")
local has_011 = compat.has_011

local state = {
  id = nil, ---@type integer?
  ready = false,
  waiting = {}, ---@type fun(client: vim.lsp.Client?, err: string?)[]
  sinks = {}, ---@type table<string, fun(value: table)>
  exit_listeners = {}, ---@type fun(message: string)[]
  generation = 0, -- counts server starts, so a chat knows when its history must be resent
  next_token = 0,
  cmd = nil, ---@type string[]?
  methods = {}, ---@type string[] what the server advertises in capabilities.experimental.dave
  folder = nil, ---@type string? the folder the running server was started in (its sessions' cwd)
}

local call = compat.client_call

local function flush_waiting(client, err)
  local waiting = state.waiting
  state.waiting = {}
  for _, cb in ipairs(waiting) do
    cb(client, err)
  end
end

local function on_progress(err, params, ctx)
  local sink = params and state.sinks[tostring(params.token)]
  if sink then
    sink(params.value or {})
    return
  end
  return vim.lsp.handlers["$/progress"](err, params, ctx)
end

local function on_init(client, result)
  if client.id ~= state.id then
    return -- a client this module already gave up on (stopped or timed out)
  end
  local dave = vim.tbl_get(result or {}, "capabilities", "experimental", "dave") or {}
  if dave.version ~= M.PROTOCOL_VERSION then
    vim.notify(
      ("dave: the server speaks protocol version %s; this plugin speaks %d. Update both to matching versions."):format(
        tostring(dave.version),
        M.PROTOCOL_VERSION
      ),
      vim.log.levels.WARN
    )
  end
  state.methods = type(dave.methods) == "table" and dave.methods or {}
  state.ready = true
  flush_waiting(client)
end

local function forget(client_id, message)
  if state.id ~= client_id then
    return
  end
  state.id, state.ready = nil, false
  flush_waiting(nil, message)
  for _, listener in ipairs(state.exit_listeners) do
    listener(message)
  end
end

local function on_exit(code, signal, client_id)
  local was_ready = state.ready
  vim.schedule(function()
    local cmd = table.concat(state.cmd or {}, " ")
    local message
    if was_ready then
      message = ("dave: the server exited (code %s, signal %s); the next query restarts it"):format(code, signal)
    else
      message = ("dave: the server `%s` exited (code %s) before it answered initialize; "
        .. "run :checkhealth dave, server log: %s"):format(cmd, code, vim.lsp.get_log_path())
    end
    forget(client_id, message)
  end)
end

local function on_error(code, err)
  if state.ready or state.id == nil then
    return
  end
  vim.schedule(function()
    local reason = vim.lsp.rpc.client_errors[code] or tostring(code)
    M.stop(("dave: the server could not start (%s): %s"):format(reason, (tostring(err):gsub("\n.*", ""))))
  end)
end

--- The server process as vim.lsp starts it, except that an error answer to `initialize` ends
--- the start with a message saying what to fix (Neovim itself raises an assertion there,
--- shown as a stack trace).
local function spawn(cmd, generation)
  return function(dispatchers, lsp_config)
    local rpc = vim.lsp.rpc.start(cmd, dispatchers, {
      cwd = lsp_config and lsp_config.cmd_cwd,
      env = config.options.cmd_env,
    })
    local request = rpc.request
    rpc.request = function(method, params, callback, ...)
      if method ~= "initialize" then
        return request(method, params, callback, ...)
      end
      return request(method, params, function(err, result)
        if not err then
          return callback(err, result)
        end
        vim.schedule(function()
          if state.generation == generation and state.id then
            forget(
              state.id,
              ("dave: the server refused to start: %s. "
                .. "Fix it in require('dave').setup(); see :help dave-config"):format(err.message or vim.inspect(err))
            )
          end
          rpc.terminate()
        end)
      end, ...)
    end
    return rpc
  end
end

local function start()
  local cmd, err = config.server_cmd()
  if not cmd then
    return nil, err
  end
  state.generation = state.generation + 1
  local opts = config.options
  local tools = require("dave.tools")
  local offered = config.editor_tools()
  local handlers = tools.lsp_handlers(offered)
  handlers["$/progress"] = on_progress
  local lsp_config = {
    name = NAME,
    cmd = spawn(cmd, state.generation),
    root_dir = opts.init_options.cwd or vim.fn.getcwd(),
    init_options = config.init_options(),
    -- What the model may ask this editor (dave/editor/* requests, answered by tools.lua).
    capabilities = { experimental = { dave = { editorTools = offered } } },
    handlers = handlers,
    on_init = on_init,
    on_exit = on_exit,
    on_error = on_error,
  }
  local ok, id
  if has_011 then
    ok, id = pcall(vim.lsp.start, lsp_config, {
      attach = false,
      silent = true,
      -- This module keeps the one client; a stopping one must never be reused.
      reuse_client = function()
        return false
      end,
    })
  else
    ok, id = pcall(vim.lsp.start_client, lsp_config)
  end
  if not ok or not id then
    return nil,
      ("dave: could not start the server `%s`%s; see :checkhealth dave"):format(
        table.concat(cmd, " "),
        ok and "" or (": " .. tostring(id))
      )
  end
  state.cmd = cmd
  state.folder = lsp_config.root_dir
  return id
end

local function live_client()
  local client = state.id and vim.lsp.get_client_by_id(state.id)
  if client and not call(client, "is_stopped") then
    return client
  end
end

--- Calls cb(client) once the server has answered `initialize`, starting it if needed;
--- cb(nil, message) when it cannot start.
---@param cb fun(client: vim.lsp.Client?, err: string?)
function M.with_client(cb)
  local client = live_client()
  if client and state.ready then
    return cb(client)
  end
  table.insert(state.waiting, cb)
  if client then
    return
  end
  state.ready = false
  local id, err = start()
  if not id then
    return flush_waiting(nil, err)
  end
  state.id = id
  local started = state.generation
  vim.defer_fn(function()
    if state.generation == started and state.id == id and not state.ready then
      M.stop(
        ("dave: the server did not answer initialize within %d ms; see :checkhealth dave"):format(
          config.options.start_timeout
        )
      )
    end
  end, config.options.start_timeout)
end

--- Sends a request once the server is up; handler(err, result) with err a table with `message`.
function M.request(method, params, handler)
  M.with_client(function(client, err)
    if not client then
      return handler({ code = -32803, message = err })
    end
    local ok = call(client, "request", method, params, function(rpc_err, result)
      handler(rpc_err, result)
    end, 0)
    if not ok then
      handler({ code = -32803, message = "dave: the server has shut down; try again" })
    end
  end)
end

--- Sends a notification if the server is running; drops it otherwise.
function M.notify(method, params)
  local client = live_client()
  if client and state.ready then
    call(client, "notify", method, params)
  end
end

--- A fresh work-done token whose `$/progress` values go to sink.
---@param sink fun(value: table)
---@return string
function M.track(sink)
  state.next_token = state.next_token + 1
  local token = ("dave-%d"):format(state.next_token)
  state.sinks[token] = sink
  return token
end

function M.untrack(token)
  state.sinks[token] = nil
end

--- listener(message) runs when the server exits or fails to start.
function M.on_exit(listener)
  table.insert(state.exit_listeners, listener)
end

--- Which start of the server this is (0: never started).
function M.generation()
  return state.generation
end

--- Whether the running server advertises a method (false before it has started).
function M.supports(method)
  return vim.tbl_contains(state.methods, method)
end

--- The folder the running server's sessions work in (nil: no server runs): the one it was
--- started with, even if Neovim's cwd changed since.
---@return string?
function M.folder()
  return live_client() and state.folder or nil
end

--- The command of the server last started (nil: none yet).
---@return string[]?
function M.cmd()
  return state.cmd
end

--- The client id of the running server (nil: none).
function M.id()
  return state.id
end

function M.is_running()
  return live_client() ~= nil and state.ready
end

--- Stops the server; what was waiting on it fails with reason. The next request starts a new one.
---@param reason string?
function M.stop(reason)
  local client = live_client()
  if state.id then
    forget(state.id, reason or "dave: the server was stopped")
  end
  if client then
    call(client, "stop")
  end
end

return M
