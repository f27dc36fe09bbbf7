--- `:checkhealth dave`: Neovim version, the server command, a real `initialize`, the
--- backend's credentials (whether they are set, never their values), and whether the model
--- endpoint answers (a short HTTP request with a timeout).
local client = require("dave.client")
local config = require("dave.config")

local M = {}

local PROBE_TIMEOUT_MS = 15000
local ENDPOINT_TIMEOUT_S = 5
local uv = vim.uv or vim.loop

--- Starts the server apart from the chat client, sends `initialize` (and, when the server has
--- folder trust, `dave/folderTrust` for the sessions' folder), then shuts it down.
---@return table? result, string? err, table? trust the folderTrust answer (or {error = message})
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
  local trust
  local methods = vim.tbl_get(result or {}, "capabilities", "experimental", "dave", "methods")
  if done and not err and type(methods) == "table" and vim.tbl_contains(methods, "dave/folderTrust") then
    local answered = false
    rpc.request("dave/folderTrust", { path = require("dave.trust").folder() }, function(e, r)
      answered, trust = true, e and { error = e.message or vim.inspect(e) } or r
    end)
    vim.wait(5000, function()
      return answered or exit_code ~= nil
    end, 20)
  end
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
  return result, nil, trust
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

--- Whether something answers at url: an HTTP request with curl (any HTTP status counts: the
--- endpoint is there), else a TCP connection to its host and port. nil, or why not.
---@param url string
---@return string? err, string? how it answered
local function reach(url)
  if vim.fn.executable("curl") == 1 and vim.system then
    local res = vim.system({ "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time",
      tostring(ENDPOINT_TIMEOUT_S), url }, { text = true }):wait((ENDPOINT_TIMEOUT_S + 2) * 1000)
    local status = tonumber(vim.trim(res.stdout or ""))
    if res.code == 0 and status and status > 0 then
      return nil, ("HTTP %d"):format(status)
    end
    local why = vim.trim((res.stderr or ""):gsub("^curl: %(%d+%)%s*", ""):gsub("\n.*", ""))
    return why ~= "" and why or ("no answer within %d s"):format(ENDPOINT_TIMEOUT_S)
  end
  local scheme, host, port = url:match("^(%a+)://%[?([^/%]]+)%]?:?(%d*)")
  if not host then
    return "not a URL"
  end
  host = host:gsub(":%d+$", "")
  port = tonumber(port) or (scheme == "https" and 443 or 80)
  local addrs = uv.getaddrinfo(host, tostring(port), { socktype = "stream" })
  if not (addrs and addrs[1]) then
    return "cannot resolve " .. host
  end
  local tcp = uv.new_tcp()
  local done, err = false, nil
  tcp:connect(addrs[1].addr, port, function(e)
    done, err = true, e
  end)
  vim.wait(ENDPOINT_TIMEOUT_S * 1000, function()
    return done
  end, 20)
  tcp:close()
  if not done then
    return ("no answer within %d s"):format(ENDPOINT_TIMEOUT_S)
  end
  return err, err == nil and "a TCP connection" or nil
end

local function check_endpoint(health, url, fix)
  local err, how = reach(url)
  if err then
    health.error(("the model endpoint %s does not answer: %s"):format(url, err), fix)
  else
    health.ok(("the model endpoint %s answers (%s)"):format(url, how))
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
    if url then
      check_endpoint(health, url, {
        "Start the model server, or fix init_options.openai.baseUrl (or OPENAI_BASE_URL).",
      })
    else
      health.error("no base URL: set init_options.openai.baseUrl or OPENAI_BASE_URL (e.g. http://localhost:11434/v1)")
    end
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
    check_endpoint(health, url or "https://api.anthropic.com", {
      "Check the network, or fix ANTHROPIC_BASE_URL in init_options.env.",
    })
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

--- Whether the sessions' folder is trusted (`:help dave-trust`), from the probe's answer.
local function check_trust(health, result, trust)
  if not result then
    return
  end
  health.start("dave: folder trust")
  local folder = require("dave.trust").folder()
  if type(trust) ~= "table" then
    return health.info("the server has no folder trust (dave/folderTrust): it loads every folder's settings")
  elseif trust.error then
    return health.warn(("dave/folderTrust failed for %s: %s"):format(folder, tostring(trust.error)))
  end
  local lines = type(trust.wouldRun) == "table" and trust.wouldRun or {}
  local what = #lines > 0 and (": its settings would run " .. require("dave.trust").summary(lines)) or ""
  if trust.trusted == true then
    health.ok(("%s is trusted%s"):format(folder, what))
  elseif #lines > 0 then
    health.info(("%s is not trusted%s; they do not load (:Dave trust loads them)"):format(folder, what))
  else
    health.ok(("%s is not trusted; its settings would run nothing"):format(folder))
  end
end

--- What `:Dave install` installed (or not), and the Python it would use; no usable Python is an
--- error only when no server was found either.
local function check_install(health, server_found)
  health.start("dave: :Dave install")
  local install = require("dave.install")
  local paths, stamp = install.paths(), install.stamp()
  if install.running() then
    health.info("an install runs now; pip's output: " .. paths.log)
  elseif stamp then
    health.ok(("installed in %s on %s from %s (dave-lsp %s, Python %s, %s s); pip's output was in %s"):format(
      paths.venv, tostring(stamp.installed), tostring(stamp.from), tostring(stamp.version),
      tostring(stamp.python_version), tostring(stamp.seconds), paths.log))
    local source = install.source()
    if stamp.hash ~= source.hash then
      health.warn(("what the plugin installs changed since (now %s): run :Dave install to update the server"):format(
        source.from))
    end
  else
    health.info("nothing installed (in " .. paths.venv .. ")")
  end
  require("dave.python").find(function(python, version)
    if python then
      health.ok(("Python for :Dave install: %s (%s)"):format(python, version))
    elseif server_found then
      health.warn(":Dave install cannot run: " .. version)
    else
      health.error(":Dave install cannot run: " .. version)
    end
  end, true)
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

  local cmd, err, how = config.server_cmd()
  if not cmd then
    health.error(err)
    check_install(health, false)
    check_editor_tools(health)
    return check_backend(health)
  end
  health.ok(("server command: %s (%s), %s"):format(table.concat(cmd, " "), vim.fn.exepath(cmd[1]), how))

  local result, probe_err, trust = probe(cmd)
  if not result then
    health.error("the server did not start: " .. probe_err, {
      "Run the command in a terminal to see its error.",
      "Install the server with :Dave install, or set `cmd` in require('dave').setup().",
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
  check_install(health, true)
  check_trust(health, result, trust)
  check_editor_tools(health)
  check_backend(health)
end

return M
