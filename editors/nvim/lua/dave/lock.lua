--- A lock directory that Neovims share: two `:Dave install` at once would fill one venv
--- together. mkdir makes it atomically; a file in it holds the owner's pid. A lock whose owner is
--- gone (a dead pid, no pid long after it was made, or older than any install) is taken over.
local M = {}

local uv = vim.uv

local STALE_SECONDS = 20 * 60 -- longer than any install: past it, the pid may be another's
local UNBORN_SECONDS = 10 -- made, but no pid written: its maker died in between
local POLL_MS = 500

local function alive(pid)
  local ok, _, name = uv.kill(pid, 0)
  return ok == 0 or name == "EPERM"
end

--- The lock's owner (pid: nil while being made, or not a pid) and age, or nil when none.
---@return {pid: integer?, age: number}?
local function holder(path)
  local stat = uv.fs_stat(path)
  if not stat then
    return nil
  end
  local f = io.open(path .. "/pid", "r")
  local pid = f and tonumber(f:read("*l") or "")
  if f then
    f:close()
  end
  -- 0 and negative pids name process groups to kill(): never a holder
  if pid and (pid <= 0 or pid % 1 ~= 0) then
    pid = nil
  end
  return { pid = pid, age = os.time() - stat.mtime.sec }
end

local function stale(h)
  if h.age > STALE_SECONDS then
    return true
  end
  if not h.pid then
    return h.age > UNBORN_SECONDS
  end
  -- Our own pid: a lock this Neovim left (its install is not running, or we would not be here).
  return h.pid == uv.os_getpid() or not alive(h.pid)
end

--- Tries once to take the lock at path. true; or false and the live holder's pid (nil while
--- the holder is writing it). Errors when the lock cannot be made (no permission).
---@return boolean, integer?
function M.try(path)
  for _ = 1, 5 do
    local made, err, name = uv.fs_mkdir(path, 448) -- 0700
    if made then
      local f = assert(io.open(path .. "/pid", "w"))
      f:write(tostring(uv.os_getpid()))
      f:close()
      return true
    end
    if name ~= "EEXIST" then
      error(err, 0)
    end
    local h = holder(path)
    if h and not stale(h) then
      return false, h.pid
    end
    if h then
      -- Renamed away before it is removed: of two Neovims that found it stale, one takes it.
      local away = ("%s.stale.%d"):format(path, uv.os_getpid())
      vim.fn.delete(away, "rf") -- one left by an earlier takeover would stop the rename
      if uv.fs_rename(path, away) then
        vim.fn.delete(away, "rf")
      end
    end
  end
  local h = holder(path)
  return false, h and h.pid
end

--- Releases the lock if this Neovim holds it (not one another took over since).
function M.release(path)
  local h = holder(path)
  if h and h.pid == uv.os_getpid() then
    vim.fn.delete(path, "rf")
  end
end

--- Takes the lock, looking again every half second while another live Neovim holds it:
--- on_wait(pid) once if it must wait, then done() once it holds it (done(err) when the lock
--- cannot be made). Returns a function that stops waiting.
---@param on_wait fun(pid: integer?)
---@param done fun(err: string?)
---@return fun()
function M.acquire(path, on_wait, done)
  local stopped, told = false, false
  local function attempt()
    if stopped then
      return
    end
    local ok, took, pid = pcall(M.try, path)
    if not ok then
      return done(tostring(took))
    elseif took then
      return done()
    end
    if not told then
      told = true
      on_wait(pid)
    end
    vim.defer_fn(attempt, POLL_MS)
  end
  attempt()
  return function()
    stopped = true
  end
end

return M
