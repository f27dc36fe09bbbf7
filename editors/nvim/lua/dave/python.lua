--- The Python `:Dave install` makes its virtual environment with: at least 3.11, with the venv
--- module; `vim.g.dave_python` when set, else the first that qualifies on PATH.
local M = {}

local MIN_PYTHON = { 3, 11 }
-- Prints the version, then fails when the venv module (or its pip bootstrap) is missing, as on
-- Debian without python3-venv.
local PROBE = "import sys; print('%d.%d.%d' % sys.version_info[:3]); import ensurepip, venv"

local function version_ok(version)
  local major, minor = version:match("^(%d+)%.(%d+)")
  major, minor = tonumber(major), tonumber(minor)
  return major > MIN_PYTHON[1] or (major == MIN_PYTHON[1] and minor >= MIN_PYTHON[2])
end

--- Finds a Python of at least 3.11 with the venv module: `vim.g.dave_python` when set, else the
--- first of python3, python3.14 ... python3.11, python on PATH. cb(path, version), or
--- cb(nil, a one-line reason). sync: answer before returning (for :checkhealth).
---@param cb fun(python: string?, version_or_reason: string)
---@param sync boolean?
function M.find(cb, sync)
  local chosen = vim.g.dave_python
  if chosen ~= nil and type(chosen) ~= "string" then
    return cb(nil, ("vim.g.dave_python must be a Python's path (a string), not %s"):format(vim.inspect(chosen)))
  end
  local names = chosen and { vim.fn.expand(chosen) }
    or { "python3", "python3.14", "python3.13", "python3.12", "python3.11", "python" }
  local tried, seen, i = {}, {}, 0
  local function try_next()
    i = i + 1
    local name = names[i]
    if not name then
      local what = #tried > 0 and ("tried " .. table.concat(tried, ", ")) or "none on PATH"
      return cb(nil, ("no Python %d.%d or newer with the venv module (%s): install one, "
        .. "or set vim.g.dave_python to its path"):format(MIN_PYTHON[1], MIN_PYTHON[2], what))
    end
    local exe = vim.fn.exepath(name)
    if exe == "" or seen[exe] then
      if chosen then
        table.insert(tried, ("vim.g.dave_python = %s (not an executable)"):format(name))
      end
      return try_next()
    end
    seen[exe] = true
    local function done(res)
      local version = (res.stdout or ""):match("^(%d+%.%d+%.%d+)")
      if res.code == 0 and version and version_ok(version) then
        return cb(exe, version)
      end
      local why = not version and "does not run" or not version_ok(version) and version or (version .. " without venv")
      table.insert(tried, ("%s (%s)"):format(name, why))
      try_next()
    end
    local ok, proc = pcall(vim.system, { exe, "-c", PROBE }, { text = true, timeout = 10000 },
      not sync and vim.schedule_wrap(done) or nil)
    if not ok then
      done({ code = -1 })
    elseif sync then
      done(proc:wait())
    end
  end
  try_next()
end

return M
