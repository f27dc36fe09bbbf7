--- `:Dave install`: the server in a virtual environment of this Neovim's own,
--- `stdpath("data")/dave-lsp/venv`, made with a Python of at least 3.11 and filled by pip with
--- the dave-lsp of the checkout this plugin is in (else `pip install dave-lsp`). Asynchronous
--- (vim.system), with notifications and pip's output in a log file; ends with
--- `User DaveInstalled` or `User DaveInstallFailed` (data.reason). A stamp file records what
--- was installed (and the version pip installed), so a second `:Dave install` with nothing to
--- do ends at once. A lock (lock.lua) keeps two Neovims from installing into one venv at once:
--- the second waits for the first, then finds the server installed.
local M = {}

local lock = require("dave.lock")

local WIN = vim.fn.has("win32") == 1

---@class dave.InstallJob
---@field proc vim.SystemObj?
---@field log file*?
---@field started number
---@field tail string[] pip's last lines, for the reason of a failure
---@field locked boolean? this Neovim holds the install lock
---@field stop_waiting fun()? stops waiting for another Neovim's install

---@type dave.InstallJob?
local job

local function notify(message, level)
  vim.notify(message, level or vim.log.levels.INFO, { title = "dave" })
end

--- Where everything goes: stdpath("data")/dave-lsp/ and what is in it.
function M.paths()
  local dir = vim.fn.stdpath("data") .. "/dave-lsp"
  local bin = dir .. (WIN and "/venv/Scripts/" or "/venv/bin/")
  local exe = WIN and ".exe" or ""
  return {
    dir = dir,
    venv = dir .. "/venv",
    server = bin .. "dave-lsp" .. exe,
    python = bin .. "python" .. exe,
    src = dir .. "/src", -- a copy of the checkout's package: pip builds it there, not in the checkout
    stamp = dir .. "/installed.json",
    log = dir .. "/install.log",
    lock = dir .. "/install.lock",
  }
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then
    return nil
  end
  local data = f:read("*a")
  f:close()
  return data
end

local function write(path, data)
  vim.fn.mkdir(vim.fn.fnamemodify(path, ":h"), "p")
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

--- The dave-lsp checkout this plugin is in: the folder two above editors/nvim, when its
--- pyproject.toml is dave-lsp's. Its root and version, or nil.
---@return {root: string, version: string}?
function M.checkout()
  local source = debug.getinfo(1, "S").source:sub(2)
  local root = vim.fn.fnamemodify(source, ":p:h:h:h:h:h")
  local pyproject = read(root .. "/pyproject.toml") or ""
  if not pyproject:find('\nname = "dave%-lsp"') then
    return nil
  end
  return { root = root, version = pyproject:match('\nversion = "([^"]+)"') or "?" }
end

--- The files pip needs to build the checkout's package, relative to its root (sorted).
local function package_files(root)
  local files = { "pyproject.toml", "README.md" }
  local function walk(rel)
    local handle = vim.uv.fs_scandir(root .. "/" .. rel)
    while handle do
      local name, kind = vim.uv.fs_scandir_next(handle)
      if not name then
        break
      end
      local path = rel .. "/" .. name
      if kind == "directory" and name ~= "__pycache__" then
        walk(path)
      elseif kind == "file" and not name:match("%.py[co]$") then
        table.insert(files, path)
      end
    end
  end
  walk("dave_lsp")
  table.sort(files)
  return files
end

--- What `:Dave install` installs now: the checkout's package (its files and their hash) or
--- dave-lsp from the package index.
---@return {kind: string, from: string, hash: string, version: string?, files: table<string, string>?}
function M.source()
  local checkout = M.checkout()
  if not checkout then
    return { kind = "index", from = "the package index (pip install dave-lsp)", hash = "index" }
  end
  local files, parts = {}, {}
  for _, rel in ipairs(package_files(checkout.root)) do
    local data = read(checkout.root .. "/" .. rel)
    if data then
      files[rel] = data
      -- sha256() takes no NUL (a string with one is a Blob); the length keeps files apart
      table.insert(parts, ("%s %d\n%s"):format(rel, #data, (data:gsub("%z", "\\0"))))
    end
  end
  return {
    kind = "checkout",
    from = checkout.root,
    version = checkout.version,
    hash = vim.fn.sha256(table.concat(parts, "\n")),
    files = files,
  }
end

--- What the last successful `:Dave install` recorded, or nil.
---@return table?
function M.stamp()
  local data = read(M.paths().stamp)
  local ok, stamp = pcall(vim.json.decode, data or "")
  return ok and type(stamp) == "table" and stamp or nil
end

--- The installed server and how it was installed (for :checkhealth), or nil. Cheap: it runs
--- at every server start.
---@return string?, string?
function M.server()
  local paths = M.paths()
  local stamp = M.stamp()
  if not stamp or vim.fn.executable(paths.server) ~= 1 then
    return nil
  end
  return paths.server,
    ("installed by :Dave install on %s from %s (dave-lsp %s, Python %s)"):format(
      tostring(stamp.installed),
      tostring(stamp.from),
      tostring(stamp.version),
      tostring(stamp.python_version)
    )
end

function M.running()
  return job ~= nil
end

--- Lets another Neovim's install go on: stops waiting for the lock, or releases it.
local function unlock(current)
  if current.stop_waiting then
    current.stop_waiting()
  end
  if current.locked then
    lock.release(M.paths().lock)
  end
end

local function finish(ok, data)
  local current = job
  job = nil
  if current and current.log then
    current.log:close()
  end
  if current then
    unlock(current)
  end
  vim.api.nvim_exec_autocmds("User", {
    pattern = ok and "DaveInstalled" or "DaveInstallFailed",
    data = data,
    modeline = false,
  })
end

local function fail(reason)
  notify("dave: :Dave install failed: " .. reason, vim.log.levels.ERROR)
  finish(false, { reason = reason, log = M.paths().log })
end

--- Why a step failed, in one line: pip's last `ERROR:` line (with the last one of a
--- subprocess's, indented, as its cause: no setuptools when offline), else the last line.
local function last_error(tail)
  local top, nested
  for i = #tail, 1, -1 do
    local indent, message = tail[i]:match("^(%s*)(ERROR: .*)")
    if message and indent == "" then
      top = top or message
    elseif message then
      nested = nested or message
    end
  end
  if top and nested then
    return ("%s (%s)"):format(top, nested)
  end
  return top or nested or vim.trim(tail[#tail] or "no output")
end

--- Runs one step (cmd), its output into the log; then() when it succeeded, else fails.
local function step(cmd, what, after)
  local current = assert(job)
  current.log:write("$ " .. table.concat(cmd, " ") .. "\n")
  current.tail = {}
  local function on_line(line)
    table.insert(current.tail, line)
    if #current.tail > 50 then
      table.remove(current.tail, 1)
    end
    local packages = line:match("^Installing collected packages: (.*)")
    if packages then
      local count = select(2, packages:gsub(",", ",")) + 1
      vim.schedule(function()
        notify(("dave: installing %d packages..."):format(count))
      end)
    end
  end
  --- A stream's output: into the log as it comes, and line by line (a chunk may end mid-line).
  local function reader()
    local partial = ""
    return function(_, data)
      if not data then
        return partial ~= "" and on_line(partial)
      end
      current.log:write(data)
      local lines = vim.split(partial .. data, "[\r\n]+")
      partial = table.remove(lines)
      for _, line in ipairs(lines) do
        if line ~= "" then
          on_line(line)
        end
      end
    end
  end
  local on_exit = vim.schedule_wrap(function(res)
    if job ~= current then
      return -- stopped (Neovim is quitting)
    end
    current.proc = nil
    if res.code ~= 0 then
      local code = res.signal ~= 0 and ("signal " .. res.signal) or ("exit " .. res.code)
      return fail(("%s failed (%s): %s; see %s"):format(what, code, last_error(current.tail), M.paths().log))
    end
    local ok, err = pcall(after, vim.trim(table.concat(current.tail, "\n")))
    if not ok and job == current then
      fail(("%s: %s"):format(what, tostring(err)))
    end
  end)
  -- In the install's folder: pip and Python would take what is in Neovim's (a checkout) first.
  local opts = { cwd = M.paths().dir, stdout = reader(), stderr = reader(), text = true }
  local ok, proc = pcall(vim.system, cmd, opts, on_exit)
  if not ok then
    return fail(("%s could not start: %s"):format(what, tostring(proc)))
  end
  current.proc = proc
end

--- Quitting Neovim during an install: a headless Neovim (`nvim --headless "+Lazy! sync" +qa`)
--- waits for it, so the build finishes; one with a UI stops it (it is not used half done).
local function on_leave()
  if not job then
    return
  end
  if #vim.api.nvim_list_uis() == 0 then
    vim.wait(15 * 60 * 1000, function()
      return job == nil
    end, 100)
  end
  if job and job.proc then
    job.proc:kill("sigterm")
  end
  if job then
    unlock(job)
  end
  job = nil
end

local function stop_installed_server()
  local client = require("dave.client")
  local cmd = client.cmd()
  if cmd and cmd[1] == M.paths().server then
    client.stop("dave: the server is being reinstalled (:Dave install); ask again once it is done")
  end
end

--- Ends at once (DaveInstalled, fresh = false) when what `source` is installed already.
local function installed_already(source)
  local paths, stamp = M.paths(), M.stamp()
  if not stamp or stamp.hash ~= source.hash or vim.fn.executable(paths.server) ~= 1 then
    return false
  end
  local index = "dave: dave-lsp %s is installed from the package index: %s (:Dave install! upgrades it)"
  notify(source.kind == "index" and index:format(tostring(stamp.version), paths.server) -- a newer one may be out
    or ("dave: the server is installed and up to date: %s (:Dave install! reinstalls it)"):format(paths.server))
  finish(true, vim.tbl_extend("force", stamp, { server = paths.server, fresh = false }))
  return true
end

-- The version pip installed (the checkout's or the index's), not __version__: the stamp tells
-- builds apart by it. Isolated (-I): a folder's own dave-lsp metadata (egg-info) is not read.
local VERSION_PROBE = "import importlib.metadata as m; print(m.version('dave-lsp'))"

--- Installs source (the install lock held): a venv, pip, then the stamp.
local function install(force, source)
  local paths = M.paths()
  require("dave.python").find(vim.schedule_wrap(function(python, version)
    if not python then
      return fail(version)
    end
    local ok, err = pcall(function()
      os.remove(paths.stamp) -- a half-done install is never used
      job.log = assert(io.open(paths.log, "w"))
      if source.files then -- pip builds a copy, so the checkout (maybe read-only) stays clean
        vim.fn.delete(paths.src, "rf")
        for rel, data in pairs(source.files) do
          write(paths.src .. "/" .. rel, data)
        end
      end
    end)
    if not ok then
      return fail(("cannot write in %s: %s"):format(paths.dir, tostring(err)))
    end
    stop_installed_server()
    notify(("dave: installing the server into %s with %s (Python %s) from %s; pip's output: %s"):format(
      paths.venv, python, version, source.from, paths.log))
    step({ python, "-m", "venv", "--clear", paths.venv }, "making the virtual environment", function()
      local target = source.files and paths.src or "dave-lsp"
      local pip = { paths.python, "-m", "pip", "install", "--disable-pip-version-check", target }
      if not source.files and force then
        table.insert(pip, 5, "--upgrade")
      end
      step(pip, "pip install " .. target, function()
        step({ paths.server, "--version" }, "the installed dave-lsp", function()
          step({ paths.python, "-I", "-c", VERSION_PROBE }, "the installed dave-lsp's version", function(out)
            local seconds = math.floor((vim.uv.hrtime() - job.started) / 1e7 + 0.5) / 100
            local record = {
              version = out:match("(%S+)%s*$") or source.version,
              source = source.kind,
              from = source.from,
              hash = source.hash,
              python = python,
              python_version = version,
              installed = os.date("!%Y-%m-%d %H:%M UTC"),
              seconds = seconds,
            }
            write(paths.stamp, vim.json.encode(record))
            notify(("dave: the server is installed (dave-lsp %s, in %.0f s): %s"):format(record.version, seconds,
              paths.server))
            finish(true, vim.tbl_extend("force", record, { server = paths.server, fresh = true }))
          end)
        end)
      end)
    end)
  end))
end

--- `:Dave install` (force: `:Dave install!`, a reinstall even if nothing changed).
---@param force boolean?
function M.run(force)
  local paths = M.paths()
  if job then
    return notify("dave: :Dave install is already running; pip's output: " .. paths.log)
  end
  local source = M.source()
  if not force and installed_already(source) then
    return
  end
  job = { started = vim.uv.hrtime(), tail = {} }
  local current = job
  local group = vim.api.nvim_create_augroup("dave_install", { clear = true })
  vim.api.nvim_create_autocmd("VimLeavePre", { group = group, once = true, callback = on_leave })
  pcall(vim.fn.mkdir, paths.dir, "p") -- if it fails, taking the lock says why
  -- Scheduled: the command returns first, and a failure is never an error of `:Dave install`.
  vim.schedule(function()
    if job ~= current then
      return
    end
    current.stop_waiting = lock.acquire(paths.lock, function(pid)
      local who = pid and ("pid %d, another Neovim"):format(pid) or "another Neovim"
      notify(("dave: an install is already running (%s); this one goes on once it ends"):format(who))
    end, function(err) -- never called once stopped (Neovim quits)
      current.stop_waiting = nil
      if err then
        return fail(("cannot lock %s: %s"):format(paths.lock, err))
      end
      current.locked = true
      -- The other Neovim may have installed the same server meanwhile.
      if force or not installed_already(M.source()) then
        install(force, source)
      end
    end)
  end)
end

return M
