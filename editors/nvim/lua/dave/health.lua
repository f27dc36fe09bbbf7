--- `:checkhealth dave`: Neovim version, the server command, a real `initialize`, and the
--- backend's credentials (whether they are set, never their values).
local client = require("dave.client")
local config = require("dave.config")

local M = {}

local PROBE_TIMEOUT_MS = 15000

--- Starts the server apart from the chat client, sends `initialize`, then shuts it down.
---@return table? result, string? err
local function probe(cmd)
  local exit_code
  local ok, rpc = pcall(vim.lsp.rpc.start, cmd, {
    notification = function() end,
    server_request = function()
      return nil, vim.lsp.rpc.rpc_response_error(vim.lsp.protocol.ErrorCodes.MethodNotFound)
    end,
    on_error = function() end,
    on_exit = function(code)
      exit_code = code
    end,
  }, { env = config.options.cmd_env })
  if not ok then
    return nil, tostring(rpc)
  end
  local done, err, result = false, nil, nil
  rpc.request("initialize", {
    processId = vim.fn.getpid(),
    rootUri = vim.uri_from_fname(config.options.init_options.cwd or vim.fn.getcwd()),
    capabilities = vim.empty_dict(),
    initializationOptions = config.init_options(),
  }, function(e, r)
    done, err, result = true, e, r
  end)
  vim.wait(PROBE_TIMEOUT_MS, function()
    return done or exit_code ~= nil
  end, 20)
  if done and not err then
    local closed = false
    rpc.request("shutdown", nil, function()
      closed = true
    end)
    vim.wait(2000, function()
      return closed
    end, 20)
    rpc.notify("exit", nil)
    vim.wait(2000, function()
      return exit_code ~= nil
    end, 20)
  end
  if exit_code == nil then
    rpc.terminate()
  end
  if err then
    return nil, ("it answered initialize with an error: %s"):format(err.message or vim.inspect(err))
  end
  if not done then
    return nil,
      exit_code and ("it exited with code %d before answering initialize"):format(exit_code)
        or ("no answer to initialize within %d ms"):format(PROBE_TIMEOUT_MS)
  end
  return result
end

--- The value of an environment variable as the backend will see it, and where it came from.
local function backend_env(name)
  local init_env = config.options.init_options.env or {}
  local cmd_env = config.options.cmd_env or {}
  if init_env[name] and init_env[name] ~= "" then
    return init_env[name], "init_options.env"
  end
  if cmd_env[name] and cmd_env[name] ~= "" then
    return cmd_env[name], "cmd_env"
  end
  local value = vim.env[name]
  if value and value ~= "" then
    return value, "the environment"
  end
end

local function check_keys(health, keys, urls, missing_hint)
  local found
  for _, name in ipairs(keys) do
    local _, source = backend_env(name)
    if source then
      found = true
      health.ok(("%s is set (in %s)"):format(name, source))
    end
  end
  for _, url in ipairs(urls) do
    if url.value then
      health.ok(("base URL: %s (%s)"):format(url.value, url.source))
    end
  end
  if not found then
    health.warn(("none of %s is set"):format(table.concat(keys, ", ")), missing_hint)
  end
end

local function check_backend(health)
  local init = config.options.init_options
  local backend = init.backend or "claude"
  health.start("dave: backend " .. backend)
  if backend == "openai" then
    local url, source = backend_env("OPENAI_BASE_URL")
    if init.openai and init.openai.baseUrl then
      url, source = init.openai.baseUrl, "init_options.openai.baseUrl"
    end
    check_keys(health, { "OPENAI_API_KEY" }, { { value = url, source = source } }, {
      "Set OPENAI_API_KEY in init_options.env or the environment, unless the server at the base URL needs no key.",
    })
  else
    local url, source = backend_env("ANTHROPIC_BASE_URL")
    check_keys(
      health,
      { "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN" },
      { { value = url, source = source } },
      {
        "Claude Code then uses its own login (`claude login`), if there is one.",
        "Or set ANTHROPIC_API_KEY in init_options.env or the environment.",
      }
    )
  end
end

local function check_editor_tools(health)
  health.start("dave: editor tools")
  local offered = config.editor_tools()
  if #offered == 0 then
    health.info("none offered (editor_tools = false): the model cannot ask Neovim anything")
    return
  end
  health.ok("offered to the model: " .. table.concat(offered, ", "))
  local servers = {}
  for _, c in ipairs(vim.lsp.get_clients()) do
    if c.name ~= "dave" then
      table.insert(servers, c.name)
    end
  end
  if #servers > 0 then
    health.info("language servers running now (for definition, references, hover, symbols): "
      .. table.concat(servers, ", "))
  else
    health.info("no language server runs now: definition, references, hover and symbols need one for the file")
  end
end

function M.check()
  local health = vim.health
  health.start("dave")
  local version = tostring(vim.version())
  if vim.fn.has("nvim-0.10") == 1 then
    health.ok("Neovim " .. version)
  else
    health.error("Neovim " .. version .. " is too old", { "dave needs Neovim 0.10 or newer" })
  end

  local cmd, err = config.server_cmd()
  if not cmd then
    health.error(err)
    check_editor_tools(health)
    return check_backend(health)
  end
  health.ok(("server command: %s (%s)"):format(table.concat(cmd, " "), vim.fn.exepath(cmd[1])))

  local result, probe_err = probe(cmd)
  if not result then
    health.error("the server did not start: " .. probe_err, {
      "Run the command in a terminal to see its error.",
      "Install the server with `pip install dave-lsp`, or set `cmd` in require('dave').setup().",
    })
  else
    local dave = vim.tbl_get(result, "capabilities", "experimental", "dave") or {}
    local info = result.serverInfo or {}
    local name = ("%s %s"):format(info.name or "server", info.version or "")
    if dave.version == client.PROTOCOL_VERSION then
      health.ok(
        ("%s answered initialize: protocol version %d, backends: %s"):format(
          vim.trim(name),
          dave.version,
          table.concat(dave.backends or {}, ", ")
        )
      )
    else
      health.error(
        ("%s answered initialize with protocol version %s; this plugin speaks %d"):format(
          vim.trim(name),
          tostring(dave.version),
          client.PROTOCOL_VERSION
        ),
        { "Update the plugin and the server to matching versions." }
      )
    end
  end
  check_editor_tools(health)
  check_backend(health)
end

return M
