--- The language servers running in this Neovim, as the editor tools (dave.tools) reach them:
--- a file's buffer loaded with the servers that support a method attached (waiting for an
--- attach only where one may come), a request sent to each with a timeout (a late one
--- cancelled), positions in each server's offset encoding. Waits yield the coroutine Neovim's
--- LSP client runs server requests in, so the UI never blocks.
local api = vim.api
local lsp = vim.lsp
local M = {}

M.REQUEST_TIMEOUT = 5000 -- ms for a language server to answer (the server waits 10 s in all)
M.ATTACH_TIMEOUT = 3000 -- ms for a language server to attach to a file loaded for a request

local compat = require("dave.compat")
local has_011 = compat.has_011
local call = compat.client_call

--- Runs start(done) and waits until done(...) is called or timeout ms pass (then it returns
--- nothing): yields the running coroutine, or waits with vim.wait outside one.
---@param start fun(done: fun(...))
---@param timeout integer
local function await(start, timeout)
  local co = coroutine.running()
  local yieldable = co ~= nil and coroutine.isyieldable()
  local done, values, suspended = false, { n = 0 }, false
  local timer
  local function finish(...)
    if done then
      return
    end
    done = true
    values = { n = select("#", ...), ... }
    if timer and not timer:is_closing() then
      timer:stop()
      timer:close()
    end
    if suspended then
      suspended = false
      local ok, err = coroutine.resume(co)
      if not ok then
        vim.notify("dave: an editor tool failed: " .. tostring(err), vim.log.levels.ERROR)
      end
    end
  end
  start(finish)
  if not done then
    timer = vim.defer_fn(function()
      finish()
    end, timeout)
    if yieldable then
      suspended = true
      coroutine.yield()
    else
      vim.wait(timeout + 100, function()
        return done
      end, 10)
    end
  end
  return unpack(values, 1, values.n)
end

--- Lets scheduled work (a buffer's didOpen, say) run before going on.
local function tick()
  await(function(done)
    vim.schedule(done)
  end, 1000)
end

function M.fail(message, ...)
  error((message:format(...):gsub("%s*\n%s*", " ")), 0)
end

function M.is_dave(client)
  return client.name == "dave" or client.id == require("dave.client").id()
end

local function names(clients)
  return table.concat(vim.tbl_map(function(c)
    return c.name
  end, clients), ", ")
end

--- The buffer of a file, if one has it (never creates one).
---@param fname string
---@return integer?
function M.find_buf(fname)
  local real = vim.uv.fs_realpath(fname)
  for _, buf in ipairs(api.nvim_list_bufs()) do
    local name = api.nvim_buf_get_name(buf)
    if name ~= "" and (name == fname or (real and vim.uv.fs_realpath(name) == real)) then
      return buf
    end
  end
end

--- Whether a running language server (not dave) may serve buf: it is for buf's filetype (its
--- `filetypes`, or else a buffer of that filetype it serves already) and the file is under
--- its root (when it has one).
local function fits(client, buf, method)
  if M.is_dave(client) or call(client, "is_stopped") then
    return false
  end
  local filetype = vim.bo[buf].filetype
  local filetypes = client.config and client.config.filetypes
  if filetype == "" then
    return false
  elseif filetypes then
    if not vim.tbl_contains(filetypes, filetype) then
      return false
    end
  elseif not vim.iter(vim.tbl_keys(client.attached_buffers or {})):any(function(b)
    return b ~= buf and api.nvim_buf_is_valid(b) and vim.bo[b].filetype == filetype
  end) then
    return false
  end
  local root = client.root_dir or (client.config and client.config.root_dir)
  if type(root) == "string" then
    local name = vim.fs.normalize(api.nvim_buf_get_name(buf))
    if not vim.startswith(name, vim.fs.normalize(root) .. "/") then
      return false
    end
  end
  return call(client, "supports_method", method, buf) ~= false
end

local function attached(buf, method)
  return vim.tbl_filter(function(c)
    return not M.is_dave(c)
  end, lsp.get_clients({ bufnr = buf, method = method }))
end

--- The buffer of the file at uri, loaded, with the language servers that support method
--- attached: those attached already, else (for a file not loaded yet) what the user's config
--- attaches when the file loads (FileType), else a running server that fits the file.
---@return integer buf, vim.lsp.Client[] clients
local function buffer_for(uri, method)
  local fname = vim.uri_to_fname(uri)
  local buf = M.find_buf(fname)
  if not buf then
    if vim.fn.filereadable(fname) ~= 1 then
      M.fail("%s is not a readable file", fname)
    end
    buf = vim.uri_to_bufnr(uri) -- a new buffer is not listed: it is no "open editor"
  end
  local loaded_now = not api.nvim_buf_is_loaded(buf)
  if loaded_now then
    vim.fn.bufload(buf) -- reads the file and runs FileType: the user's config may start a server
    tick()
  end
  local clients = attached(buf, method)
  if #clients > 0 then
    return buf, clients
  end
  -- Wait only where an attach may come: a file just loaded, a server just attached, or one
  -- still starting (a buffer open for long with no server gets none by waiting).
  local expect = loaded_now
  for _, client in ipairs(lsp.get_clients()) do
    if fits(client, buf, method) then
      expect = lsp.buf_attach_client(buf, client.id) or expect
    elseif not M.is_dave(client) and not client.initialized then
      expect = true
    end
  end
  if expect then
    local poll = vim.uv.new_timer()
    await(function(done)
      poll:start(0, 50, vim.schedule_wrap(function()
        if #attached(buf, method) > 0 then
          done()
        end
      end))
    end, M.ATTACH_TIMEOUT)
    poll:stop()
    poll:close()
  end
  clients = attached(buf, method)
  if #clients == 0 then
    local others = attached(buf, nil)
    if #others > 0 then
      M.fail("the language servers of %s in Neovim (%s) do not support %s", require("dave.config").relative(fname),
        names(others), method)
    end
    M.fail("no language server in Neovim serves %s (filetype %s)", require("dave.config").relative(fname),
      vim.bo[buf].filetype ~= "" and vim.bo[buf].filetype or "none")
  end
  tick() -- the didOpen of a buffer just attached goes first
  return buf, clients
end

--- A position in UTF-16 (the server's) as the client's offset encoding counts it.
local function encoded(buf, position, encoding)
  if encoding == "utf-16" or not has_011 then
    return position
  end
  local line = api.nvim_buf_get_lines(buf, position.line, position.line + 1, false)[1] or ""
  local byte = vim.str_byteindex(line, "utf-16", position.character, false)
  local character = encoding == "utf-8" and byte or vim.str_utfindex(line, "utf-32", byte, false)
  return { line = position.line, character = character }
end

--- Sends method to each client and waits (at most REQUEST_TIMEOUT) for their answers:
--- a list of {client, result} for those that answered without error, and the errors.
---@param clients vim.lsp.Client[]
---@param make_params fun(client: vim.lsp.Client): table
---@param buf integer?
function M.request_all(clients, method, make_params, buf)
  local answers, errors, sent = {}, {}, {}
  await(function(done)
    local pending = 0
    for _, client in ipairs(clients) do
      local ok, id = call(client, "request", method, make_params(client), function(err, result)
        sent[client.id] = nil
        if err then
          table.insert(errors, ("%s: %s"):format(client.name, tostring(err.message or err)))
        else
          table.insert(answers, { client = client, result = result })
        end
        pending = pending - 1
        if pending == 0 then
          done()
        end
      end, buf)
      if ok then
        pending = pending + 1
        sent[client.id] = { client = client, id = id }
      end
    end
    if pending == 0 then
      done()
    end
  end, M.REQUEST_TIMEOUT)
  local late = {}
  for _, s in pairs(sent) do -- no answer in time: cancel it
    pcall(call, s.client, "cancel_request", s.id)
    table.insert(late, s.client.name)
  end
  if #answers == 0 and #late > 0 then
    M.fail("%s did not answer %s within %d s", table.concat(late, ", "), method, M.REQUEST_TIMEOUT / 1000)
  end
  if #answers == 0 and #errors > 0 then
    M.fail("%s failed: %s", method, table.concat(errors, "; "))
  end
  return answers
end

--- A textDocument request at the server's position, to the file's language servers.
function M.position_request(method, params)
  local uri = vim.tbl_get(params, "textDocument", "uri")
  if type(uri) ~= "string" or type(params.position) ~= "table" then
    M.fail("%s needs textDocument.uri and position", method)
  end
  local buf, clients = buffer_for(uri, method)
  return M.request_all(clients, method, function(client)
    local p = vim.deepcopy(params)
    p.textDocument = { uri = vim.uri_from_bufnr(buf) }
    p.position = encoded(buf, params.position, client.offset_encoding)
    return p
  end, buf)
end

--- Every answer's locations in one list (a single Location or LocationLink counts as one).
function M.locations(answers)
  local out = {}
  for _, answer in ipairs(answers) do
    local result = answer.result
    if type(result) == "table" then
      if result.uri or result.targetUri then
        table.insert(out, result)
      else
        vim.list_extend(out, result)
      end
    end
  end
  return out
end

return M
