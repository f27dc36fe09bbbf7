--- The editor's context that goes with a prompt (`dave/query`'s `context`): the file of the
--- window the chat was opened from, its Visual selection when the ask came with a range, and
--- the files a prompt mentions as `@path`, `@path#L5` or `@path#L5-10`. Also `@` completion
--- for the prompt input and the selection the `selection` editor tool answers with.
local config = require("dave.config")

local api = vim.api
local M = {}

local has_011 = require("dave.compat").has_011

local origin = nil ---@type integer? the last window that showed a file

--- A window showing a file buffer of the user's (not a chat, a float, a help or scratch buffer).
---@param win integer?
local function is_file_window(win)
  if not (win and api.nvim_win_is_valid(win)) then
    return false
  end
  if api.nvim_win_get_config(win).relative ~= "" then
    return false
  end
  local buf = api.nvim_win_get_buf(win)
  return vim.bo[buf].buftype == "" and vim.bo[buf].filetype ~= "dave" and api.nvim_buf_get_name(buf) ~= ""
end

local function remember()
  local win = api.nvim_get_current_win()
  if is_file_window(win) then
    origin = win
  end
end

local group = api.nvim_create_augroup("dave_context", { clear = true })
api.nvim_create_autocmd({ "WinEnter", "BufWinEnter", "BufEnter" }, {
  group = group,
  callback = remember,
  desc = "dave: remember the window a chat is opened from",
})
remember()

--- The window the chat was opened from: the current window when it shows a file, else the
--- last one that did (nil: none).
---@return integer?
function M.origin_window()
  remember()
  if origin and is_file_window(origin) then
    return origin
  end
  local previous = vim.fn.win_getid(vim.fn.winnr("#"))
  if is_file_window(previous) then
    return previous
  end
end

--- Byte column col (0-based) of a line as an LSP character (UTF-16 code units).
---@param line string
---@param col integer
---@return integer
function M.utf16(line, col)
  col = math.max(0, math.min(col, #line))
  if has_011 then
    return vim.str_utfindex(line, "utf-16", col, false)
  end
  local _, u16 = vim.str_utfindex(line, col)
  return u16
end

--- The byte length of the character that starts at byte col (1-based) of line.
local function char_len(line, col)
  local ch = line:sub(col):match("^[%z\1-\127\194-\244][\128-\191]*")
  return ch and #ch or 1
end

local function line_of(buf, row)
  return api.nvim_buf_get_lines(buf, row, row + 1, false)[1] or ""
end

--- An LSP range and the text of lines line1..line2 (1-based, inclusive) of buf, whole lines.
local function lines_range(buf, line1, line2)
  local lines = api.nvim_buf_get_lines(buf, line1 - 1, line2, false)
  local last = lines[#lines] or ""
  return {
    start = { line = line1 - 1, character = 0 },
    ["end"] = { line = line2 - 1, character = M.utf16(last, #last) },
  }, table.concat(lines, "\n")
end

--- A Visual selection of buf from start to finish ({row, col}: 1-based row, 0-based byte
--- column, as marks are; in any order): {range, text, line1, line2}. Charwise selections keep
--- their columns; linewise and blockwise ones their lines (a block's text is its columns).
local function selection_between(buf, mode, start, finish)
  if start[1] > finish[1] or (start[1] == finish[1] and start[2] > finish[2]) then
    start, finish = finish, start
  end
  local count = api.nvim_buf_line_count(buf)
  if start[1] < 1 or start[1] > count then
    return nil
  end
  finish = { math.min(finish[1], count), finish[2] }
  if mode ~= "v" then
    local range, text = lines_range(buf, start[1], finish[1])
    if mode == "\22" then -- blockwise: the columns, as Neovim yanks them
      local ok, region = pcall(vim.fn.getregion, { buf, start[1], start[2] + 1, 0 },
        { buf, finish[1], finish[2] + 1, 0 }, { type = mode })
      if ok then
        text = table.concat(region, "\n")
      end
    end
    return { range = range, text = text, line1 = start[1], line2 = finish[1] }
  end
  local first, last = line_of(buf, start[1] - 1), line_of(buf, finish[1] - 1)
  local start_col = math.min(start[2], #first)
  local end_col = math.min(#last, finish[2] + char_len(last, finish[2] + 1)) -- exclusive, bytes
  local lines = api.nvim_buf_get_text(buf, start[1] - 1, start_col, finish[1] - 1, end_col, {})
  return {
    range = {
      start = { line = start[1] - 1, character = M.utf16(first, start_col) },
      ["end"] = { line = finish[1] - 1, character = M.utf16(last, end_col) },
    },
    text = table.concat(lines, "\n"),
    line1 = start[1],
    line2 = finish[1],
  }
end

--- The last Visual selection of buf ('< and '>, mode visualmode()), or nil when buf has none.
---@param buf integer
---@return {range: table, text: string, line1: integer, line2: integer}?
function M.visual_selection(buf)
  local start = api.nvim_buf_get_mark(buf, "<")
  local finish = api.nvim_buf_get_mark(buf, ">")
  if start[1] == 0 or finish[1] == 0 then
    return nil
  end
  return selection_between(buf, vim.fn.visualmode(), start, finish)
end

--- The Visual selection being made in the current window (buf is its buffer) in mode.
function M.live_selection(buf, mode)
  local v = vim.fn.getpos("v")
  local cursor = api.nvim_win_get_cursor(0)
  return selection_between(buf, mode, { v[2], v[3] - 1 }, cursor)
end

--- The selection of a range given to `:Dave ask` (1-based lines): the Visual selection itself
--- when the range is that of the last one ('<,'>), else the whole lines.
---@param range {buf: integer, line1: integer, line2: integer}
---@return {range: table, text: string}
function M.range_selection(range)
  local visual = M.visual_selection(range.buf)
  if visual and visual.line1 == range.line1 and visual.line2 == range.line2 then
    return visual
  end
  local r, text = lines_range(range.buf, range.line1, range.line2)
  return { range = r, text = text }
end

--- `context.activeFile` for buf; with a range, its selection too.
---@param buf integer
---@param range {buf: integer, line1: integer, line2: integer}?
---@return table?
function M.active_file(buf, range)
  if not api.nvim_buf_is_valid(buf) or vim.bo[buf].buftype ~= "" then
    return nil
  end
  local name = api.nvim_buf_get_name(buf)
  if name == "" then
    return nil
  end
  local file = { path = vim.fs.normalize(name) }
  local filetype = vim.bo[buf].filetype
  if filetype ~= "" then
    file.languageId = filetype
  end
  if range then
    local selection = M.range_selection(range)
    file.selection = selection.range
    file.selectedText = selection.text
  end
  return file
end

--- A path as typed in a prompt, made absolute: relative to Neovim's cwd (what `@` completion
--- offers), else to the sessions' folder. nil when it is not a readable file.
---@param path string
---@return string?
local function resolve(path)
  if path:sub(1, 2) == "~/" then
    path = vim.env.HOME .. path:sub(2)
  end
  local candidates = { path }
  if not vim.startswith(path, "/") then
    candidates = { vim.fn.getcwd() .. "/" .. path, config.cwd() .. "/" .. path }
  end
  for _, candidate in ipairs(candidates) do
    if vim.fn.filereadable(candidate) == 1 then
      return vim.fs.normalize(vim.fn.fnamemodify(candidate, ":p"))
    end
  end
end

--- Image files a prompt names as `@path` go as attachments, not mentions.
M.IMAGE_TYPES = { png = "image/png", jpg = "image/jpeg", jpeg = "image/jpeg", gif = "image/gif", webp = "image/webp" }

local function image_type(path)
  local ext = path:match("%.([%w]+)$")
  return ext and M.IMAGE_TYPES[ext:lower()]
end

--- The `@words` of a prompt: each one's path (trailing punctuation dropped) and line range.
local function at_words(prompt)
  local out = {}
  for word in (" " .. prompt):gmatch("%s@([^%s@]+)") do
    local path, first, last = word:match("^(.-)#L(%d+)%-L?(%d+)")
    if not path then
      path, first = word:match("^(.-)#L(%d+)")
    end
    path = path or word:gsub("[%.,;:!%?%)%]}'\"`]+$", "")
    table.insert(out, { path = path, first = first, last = last })
  end
  return out
end

--- The images a prompt names (`@shot.png`: png, jpeg, gif, webp files) as `dave/query`
--- attachments, the file's bytes in base64; nil when there are none.
---@param prompt string
---@return {type: string, mediaType: string, data: string}[]?, string[]? attachments, their paths
function M.images(prompt)
  local found, paths = {}, {}
  for _, w in ipairs(at_words(prompt)) do
    local media = image_type(w.path)
    local abs = media and w.path ~= "" and resolve(w.path)
    if abs and not vim.tbl_contains(paths, abs) then
      local f = io.open(abs, "rb")
      local bytes = f and f:read("*a")
      if f then
        f:close()
      end
      if bytes then
        table.insert(paths, abs)
        table.insert(found, { type = "image", mediaType = media, data = vim.base64.encode(bytes) })
      end
    end
  end
  if #found > 0 then
    return found, paths
  end
end

--- The `@words` of a prompt that name image files (without the `@`).
---@param prompt string
---@return string[]
function M.image_words(prompt)
  local out = {}
  for _, w in ipairs(at_words(prompt)) do
    if image_type(w.path) and w.path ~= "" and resolve(w.path) then
      table.insert(out, w.path)
    end
  end
  return out
end

--- The files a prompt mentions: `@path`, `@path#L5`, `@path#L5-10` (or `#L5-L10`) after a
--- space or at the start of a line, where path is a readable file. Trailing punctuation
--- (`@a.py,`) is not part of the path. The prompt's text stays as it is.
---@param prompt string
---@return {path: string, startLine: integer?, endLine: integer?}[]
function M.mentions(prompt)
  local found, seen = {}, {}
  for _, w in ipairs(at_words(prompt)) do
    local path, first, last = w.path, w.first, w.last
    local abs = path ~= "" and not image_type(path) and resolve(path)
    if abs then
      local a, b = tonumber(first), tonumber(last or first)
      if a and b and b < a then
        a, b = b, a
      end
      local mention = { path = abs, startLine = a, endLine = b }
      local key = ("%s#%s-%s"):format(abs, tostring(a), tostring(b))
      if not seen[key] then
        seen[key] = true
        table.insert(found, mention)
      end
    end
  end
  return found
end

--- Files and folders completing lead (relative to Neovim's cwd), as `@` mentions complete.
local function files(lead)
  return vim.fn.getcompletion(lead, "file")
end

--- Completions of the `@word` at the end of text: text with each matching path in its place.
--- Empty when text does not end in an `@` mention.
---@param text string
---@return string[]
function M.complete(text)
  local before, lead = text:match("^(.-)@([^%s@#]*)$")
  if not before or (before ~= "" and not before:match("%s$")) then
    return {}
  end
  return vim.tbl_map(function(item)
    return before .. "@" .. item
  end, files(lead))
end

--- `:Dave ask` completion of the argument under the cursor (arglead is that word only).
---@param arglead string
---@return string[]
function M.complete_word(arglead)
  local lead = arglead:match("^@([^#]*)$")
  if not lead then
    return {}
  end
  return vim.tbl_map(function(item)
    return "@" .. item
  end, files(lead))
end

--- Slash commands of each session (`dave/listCommands`), fetched once.
local commands = {} ---@type table<string, {name: string, description: string?}[]>
local fetching = {} ---@type table<string, boolean>

--- Fetches (once) the slash commands of the current chat's session, for `/` completion.
function M.fetch_commands()
  local session = require("dave.sessions").peek()
  local key = session and session.id or ""
  if commands[key] or fetching[key] then
    return
  end
  local client = require("dave.client")
  fetching[key] = true
  client.request("dave/listCommands", session and { sessionId = session.id } or vim.empty_dict(), function(err, result)
    fetching[key] = nil
    if not err and result and type(result.commands) == "table" then
      commands[key] = result.commands
    end
  end)
end

--- The cached slash commands of the current chat (nil: not fetched yet).
function M.commands()
  local session = require("dave.sessions").peek()
  return commands[session and session.id or ""] or commands[""]
end

--- Completions of a prompt that is a slash command being typed (`/com`): `/compact`, ...
---@param text string
---@return string[]?
function M.complete_command(text)
  local lead = text:match("^/(%S*)$")
  if not lead then
    return nil
  end
  local list = M.commands()
  if not list then
    M.fetch_commands()
    return {}
  end
  local out = {}
  for _, command in ipairs(list) do
    if type(command.name) == "string" and vim.startswith(command.name, lead) then
      table.insert(out, "/" .. command.name)
    end
  end
  return out
end

--- For `vim.ui.input`'s completion (`customlist`): the whole input is the lead.
function M.complete_input(arglead)
  return M.complete_command(arglead) or M.complete(arglead)
end

M.INPUT_COMPLETION = "customlist,v:lua.require'dave.context'.complete_input"

--- `dave/query`'s `context` for a prompt: the active file (unless `context.active_file` is
--- off; with a range, its selection) and the prompt's mentions. nil when there is nothing.
---@param prompt string
---@param range {buf: integer, line1: integer, line2: integer}?
---@return table?
function M.for_prompt(prompt, range)
  local context = {}
  if config.options.context.active_file then
    local buf = range and range.buf
    if not buf then
      local win = M.origin_window()
      buf = win and api.nvim_win_get_buf(win)
    end
    context.activeFile = buf and M.active_file(buf, range) or nil
  end
  local mentions = M.mentions(prompt)
  if #mentions > 0 then
    context.mentions = mentions
  end
  return next(context) and context or nil
end

return M
