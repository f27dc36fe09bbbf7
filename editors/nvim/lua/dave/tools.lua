--- Editor tools: the server's `dave/editor/<name>` requests, answered from this Neovim's
--- diagnostics, the language servers attached to a file's buffer, its buffers and the
--- Visual selection. Read-only. Each handler runs in the coroutine Neovim's LSP client runs
--- server requests in; it waits for language servers with async requests and a timeout, so
--- the UI never blocks.
local context = require("dave.context")

local api = vim.api
local lsp = vim.lsp
local M = {}

--- What the client offers, as listed in `capabilities.experimental.dave.editorTools`.
M.CAPABILITIES = { "diagnostics", "definition", "references", "symbols", "hover", "openEditors", "selection" }

M.REQUEST_TIMEOUT = 5000 -- ms for a language server to answer (the server waits 10 s in all)
M.ATTACH_TIMEOUT = 3000 -- ms for a language server to attach to a file loaded for a request

local compat = require("dave.compat")
local has_011 = compat.has_011
local ErrorCodes = lsp.protocol.ErrorCodes
local FAILED = ErrorCodes.RequestFailed or ErrorCodes.InternalError

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

local function fail(message, ...)
  error((message:format(...):gsub("%s*\n%s*", " ")), 0)
end

local function is_dave(client)
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
local function find_buf(fname)
  local real = vim.uv.fs_realpath(fname)
  for _, buf in ipairs(api.nvim_list_bufs()) do
    local name = api.nvim_buf_get_name(buf)
    if name ~= "" and (name == fname or (real and vim.uv.fs_realpath(name) == real)) then
      return buf
    end
  end
end

local function is_file_buf(buf)
  return api.nvim_buf_is_valid(buf) and vim.bo[buf].buftype == "" and api.nvim_buf_get_name(buf) ~= ""
end

--- Whether a running language server (not dave) may serve buf: it is for buf's filetype (its
--- `filetypes`, or else a buffer of that filetype it serves already) and the file is under
--- its root (when it has one).
local function fits(client, buf, method)
  if is_dave(client) or call(client, "is_stopped") then
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
    return not is_dave(c)
  end, lsp.get_clients({ bufnr = buf, method = method }))
end

--- The buffer of the file at uri, loaded, with the language servers that support method
--- attached: those attached already, else (for a file not loaded yet) what the user's config
--- attaches when the file loads (FileType), else a running server that fits the file.
---@return integer buf, vim.lsp.Client[] clients
local function buffer_for(uri, method)
  local fname = vim.uri_to_fname(uri)
  local buf = find_buf(fname)
  if not buf then
    if vim.fn.filereadable(fname) ~= 1 then
      fail("%s is not a readable file", fname)
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
    elseif not is_dave(client) and not client.initialized then
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
      fail("the language servers of %s in Neovim (%s) do not support %s", require("dave.config").relative(fname),
        names(others), method)
    end
    fail("no language server in Neovim serves %s (filetype %s)", require("dave.config").relative(fname),
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
local function request_all(clients, method, make_params, buf)
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
    fail("%s did not answer %s within %d s", table.concat(late, ", "), method, M.REQUEST_TIMEOUT / 1000)
  end
  if #answers == 0 and #errors > 0 then
    fail("%s failed: %s", method, table.concat(errors, "; "))
  end
  return answers
end

--- A textDocument request at the server's position, to the file's language servers.
local function position_request(method, params)
  local uri = vim.tbl_get(params, "textDocument", "uri")
  if type(uri) ~= "string" or type(params.position) ~= "table" then
    fail("%s needs textDocument.uri and position", method)
  end
  local buf, clients = buffer_for(uri, method)
  return request_all(clients, method, function(client)
    local p = vim.deepcopy(params)
    p.textDocument = { uri = vim.uri_from_bufnr(buf) }
    p.position = encoded(buf, params.position, client.offset_encoding)
    return p
  end, buf)
end

--- Every answer's locations in one list (a single Location or LocationLink counts as one).
local function locations(answers)
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

---@type table<string, fun(params: table): any>
M.handlers = {}

function M.handlers.definition(params)
  local found = locations(position_request("textDocument/definition", params))
  return #found > 0 and found or nil
end

function M.handlers.references(params)
  params.context = params.context or { includeDeclaration = true }
  return locations(position_request("textDocument/references", params))
end

function M.handlers.hover(params)
  for _, answer in ipairs(position_request("textDocument/hover", params)) do
    local result = answer.result
    if type(result) == "table" and result.contents ~= nil then
      return result
    end
  end
end

function M.handlers.symbols(params)
  local clients = vim.tbl_filter(function(c)
    return not is_dave(c)
  end, lsp.get_clients({ method = "workspace/symbol" }))
  if #clients == 0 then
    fail("no language server running in Neovim supports workspace/symbol")
  end
  local out = {}
  for _, answer in ipairs(request_all(clients, "workspace/symbol", function()
    return { query = tostring(params.query or "") }
  end)) do
    if type(answer.result) == "table" then
      vim.list_extend(out, answer.result)
    end
  end
  return out
end

--- vim.diagnostic's byte columns of a loaded buffer as UTF-16 characters.
local function lsp_position(buf, lines, row, col)
  if not api.nvim_buf_is_loaded(buf) then
    return { line = row, character = col }
  end
  if lines[row] == nil then
    lines[row] = api.nvim_buf_get_lines(buf, row, row + 1, false)[1] or ""
  end
  return { line = row, character = context.utf16(lines[row], col) }
end

local function lsp_diagnostic(buf, lines, d)
  local source = d.source
  if source == nil and d.namespace then
    local ns = vim.diagnostic.get_namespace(d.namespace)
    source = ns and ns.name or nil
  end
  return {
    range = {
      start = lsp_position(buf, lines, d.lnum, d.col or 0),
      ["end"] = lsp_position(buf, lines, d.end_lnum or d.lnum, d.end_col or d.col or 0),
    },
    severity = d.severity,
    message = d.message,
    source = source,
    code = d.code,
  }
end

function M.handlers.diagnostics(params)
  local only
  if type(params.uri) == "string" then
    only = find_buf(vim.uri_to_fname(params.uri))
    if not only then
      return { files = { { uri = params.uri, diagnostics = {} } } }
    end
  end
  local by_buf, order = {}, {}
  for _, d in ipairs(vim.diagnostic.get(only)) do
    if is_file_buf(d.bufnr) then
      if not by_buf[d.bufnr] then
        by_buf[d.bufnr] = { lines = {}, list = {} }
        table.insert(order, d.bufnr)
      end
      table.insert(by_buf[d.bufnr].list, lsp_diagnostic(d.bufnr, by_buf[d.bufnr].lines, d))
    end
  end
  local files = {}
  for _, buf in ipairs(order) do
    table.insert(files, { uri = vim.uri_from_bufnr(buf), diagnostics = by_buf[buf].list })
  end
  if only and #files == 0 then
    files = { { uri = params.uri, diagnostics = {} } }
  end
  return { files = files }
end

function M.handlers.openEditors()
  local win = context.origin_window()
  local active = win and api.nvim_win_get_buf(win)
  local editors = {}
  for _, buf in ipairs(api.nvim_list_bufs()) do
    if vim.bo[buf].buflisted and is_file_buf(buf) then
      local filetype = vim.bo[buf].filetype
      table.insert(editors, {
        uri = vim.uri_from_bufnr(buf),
        languageId = filetype ~= "" and filetype or nil,
        isActive = buf == active,
        isDirty = vim.bo[buf].modified,
      })
    end
  end
  return { editors = editors }
end

function M.handlers.selection()
  local win = context.origin_window()
  if not win then
    return nil
  end
  local buf = api.nvim_win_get_buf(win)
  local selection
  local mode = vim.fn.mode()
  if win == api.nvim_get_current_win() and (mode == "v" or mode == "V" or mode == "\22") then
    selection = context.live_selection(buf, mode) -- selecting right now
  else
    selection = context.visual_selection(buf)
  end
  if not selection then
    return nil
  end
  return { uri = vim.uri_from_bufnr(buf), range = selection.range, text = selection.text }
end

--- Answers the server request `dave/editor/<name>`: the result (vim.NIL for none), or nil
--- and an LSP error with a one-line message.
---@param name string
---@param params table?
function M.handle(name, params)
  local handler = M.handlers[name]
  if not handler then
    return nil, lsp.rpc_response_error(ErrorCodes.MethodNotFound, "dave: no editor tool " .. name)
  end
  local ok, result = pcall(handler, type(params) == "table" and params or {})
  if not ok then
    local message = tostring(result):gsub("%s*\n.*", "")
    return nil, lsp.rpc_response_error(FAILED, message)
  end
  if result == nil then
    return vim.NIL
  end
  return result
end

--- The LSP handlers of the dave client for the tools in capabilities.
---@param capabilities string[]
---@return table<string, function>
function M.lsp_handlers(capabilities)
  local out = {}
  for _, name in ipairs(capabilities) do
    out["dave/editor/" .. name] = function(_, params)
      return M.handle(name, params)
    end
  end
  return out
end

return M
