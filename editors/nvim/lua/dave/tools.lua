--- Editor tools: the server's `dave/editor/<name>` requests, answered from this Neovim's
--- diagnostics, the language servers attached to a file's buffer, its buffers and the
--- Visual selection. Read-only. Each handler runs in the coroutine Neovim's LSP client runs
--- server requests in; it reaches the language servers through dave.language_servers, which
--- waits for them with async requests and a timeout, so the UI never blocks.
local context = require("dave.context")
local servers = require("dave.language_servers")

local api = vim.api
local lsp = vim.lsp
local M = {}

local ErrorCodes = lsp.protocol.ErrorCodes
local FAILED = ErrorCodes.RequestFailed or ErrorCodes.InternalError

--- What the client offers, as listed in `capabilities.experimental.dave.editorTools`.
M.CAPABILITIES = { "diagnostics", "definition", "references", "symbols", "hover", "openEditors", "selection" }

local function is_file_buf(buf)
  return api.nvim_buf_is_valid(buf) and vim.bo[buf].buftype == "" and api.nvim_buf_get_name(buf) ~= ""
end

---@type table<string, fun(params: table): any>
M.handlers = {}

function M.handlers.definition(params)
  local found = servers.locations(servers.position_request("textDocument/definition", params))
  return #found > 0 and found or nil
end

function M.handlers.references(params)
  params.context = params.context or { includeDeclaration = true }
  return servers.locations(servers.position_request("textDocument/references", params))
end

function M.handlers.hover(params)
  for _, answer in ipairs(servers.position_request("textDocument/hover", params)) do
    local result = answer.result
    if type(result) == "table" and result.contents ~= nil then
      return result
    end
  end
end

function M.handlers.symbols(params)
  local clients = vim.tbl_filter(function(c)
    return not servers.is_dave(c)
  end, lsp.get_clients({ method = "workspace/symbol" }))
  if #clients == 0 then
    servers.fail("no language server running in Neovim supports workspace/symbol")
  end
  local out = {}
  for _, answer in ipairs(servers.request_all(clients, "workspace/symbol", function()
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
    only = servers.find_buf(vim.uri_to_fname(params.uri))
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
