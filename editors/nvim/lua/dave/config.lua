--- Options of the plugin: defaults, validation, and the server command they resolve to.
local M = {}

---@class dave.Config
M.defaults = {
  --- Command that starts the server; nil: `dave-lsp` on PATH, else the server `:Dave install`
  --- installed, else the `.venv/bin/dave-lsp` of the dave-lsp checkout this plugin is in.
  ---@type string[]?
  cmd = nil,
  --- Extra environment of the server process.
  ---@type table<string, string>?
  cmd_env = nil,
  --- Sent as `initializationOptions`: backend, model, permissionMode, cwd, env,
  --- claude = { cliPath }, openai = { baseUrl }, trustedFolders (`:help dave-trust`). Unknown
  --- keys are passed through.
  init_options = {},
  --- The chat window: "right", "left", "above" or "below"; size in columns/lines, or a
  --- fraction of the editor when below 1 (kept when Neovim is resized). conceallevel: the
  --- chat window's 'conceallevel' (2 hides markdown markers; 0 shows them).
  window = { position = "right", size = 0.4, conceallevel = 2 },
  --- The prompt area under the chat: its height in lines, and its keys (`submit` in Normal
  --- and Insert mode, `submit_normal` in Normal mode only; false: unmapped).
  prompt = { height = 6, keymaps = { submit = "<C-s>", submit_normal = "<CR>" } },
  --- Keys in the chat buffer; set one to false to leave it unmapped. `ask` goes to the
  --- prompt area; allow, allow_always, deny and permissions answer the chat's oldest
  --- permission request (permissions: with the vim.ui.select menu); review opens the diff
  --- tab of the chat's oldest file change.
  keymaps = {
    ask = { "i", "a", "<CR>" },
    cancel = "<C-c>",
    close = "q",
    allow = "ga",
    allow_always = "gA",
    deny = "gd",
    permissions = "gp",
    review = "gr",
  },
  --- How long to wait for the server to answer `initialize`, in milliseconds.
  start_timeout = 30000,
  --- Reviewing file changes: `diff` reviews each proposed Write/Edit/MultiEdit in a diff tab
  --- (false: ask with the plain permission prompt); `open` when that tab opens: "ask" only on
  --- `:Dave review` (`gr`/`gp` in the chat), "auto" at once unless you are typing; keys of the
  --- proposal buffer (false: unmapped).
  review = {
    diff = true,
    open = "ask",
    keymaps = { accept = "<leader>da", reject = "<leader>dr" },
  },
  --- What goes with a prompt: `active_file` sends the file of the window the chat was opened
  --- from (with a range, its selection) as `context.activeFile`; false sends none, and a
  --- range's lines go into the prompt's text instead. `@path` mentions go along either way.
  context = { active_file = true },
  --- What the model may ask this Neovim (`dave/editor/*`): any of "diagnostics",
  --- "definition", "references", "symbols", "hover", "openEditors", "selection"; {} or false
  --- for none.
  ---@type string[]|false
  editor_tools = { "diagnostics", "definition", "references", "symbols", "hover", "openEditors", "selection" },
}

---@type dave.Config
M.options = vim.deepcopy(M.defaults)

local PERMISSION_MODES = { "default", "acceptEdits", "plan", "bypassPermissions" }
local BACKENDS = { "claude", "openai" }
local POSITIONS = { "right", "left", "above", "below" }
local REVIEW_OPEN = { "ask", "auto" }
local EDITOR_TOOLS = { "diagnostics", "definition", "references", "symbols", "hover", "openEditors", "selection" }

local has_011 = require("dave.compat").has_011

--- vim.validate in the form this Neovim prefers (the table form is deprecated from 0.11).
local function check(name, value, expected, optional)
  if has_011 then
    vim.validate(name, value, expected, optional)
  else
    vim.validate({ [name] = { value, expected, optional } })
  end
end

local function one_of(name, value, allowed)
  if value ~= nil and not vim.tbl_contains(allowed, value) then
    error(("%s: expected one of %s, got %s"):format(name, table.concat(allowed, ", "), vim.inspect(value)), 0)
  end
end

local function check_string_map(name, map)
  check(name, map, "table", true)
  for k, v in pairs(map or {}) do
    check(name .. "." .. tostring(k), v, "string")
  end
end

local function validate(o)
  check("cmd", o.cmd, "table", true)
  if o.cmd then
    check("cmd[1]", o.cmd[1], "string")
  end
  check_string_map("cmd_env", o.cmd_env)
  check("init_options", o.init_options, "table")
  local init = o.init_options
  check("init_options.backend", init.backend, "string", true)
  one_of("init_options.backend", init.backend, BACKENDS)
  check("init_options.model", init.model, "string", true)
  check("init_options.permissionMode", init.permissionMode, "string", true)
  one_of("init_options.permissionMode", init.permissionMode, PERMISSION_MODES)
  check("init_options.cwd", init.cwd, "string", true)
  check_string_map("init_options.env", init.env)
  check("init_options.trustedFolders", init.trustedFolders, "table", true)
  for i, folder in ipairs(init.trustedFolders or {}) do
    check(("init_options.trustedFolders[%d]"):format(i), folder, "string")
  end
  check("init_options.claude", init.claude, "table", true)
  check("init_options.openai", init.openai, "table", true)
  check("window.position", o.window.position, "string")
  one_of("window.position", o.window.position, POSITIONS)
  check("window.size", o.window.size, "number")
  check("window.conceallevel", o.window.conceallevel, "number")
  check("prompt", o.prompt, "table")
  check("prompt.height", o.prompt.height, "number")
  check("prompt.keymaps", o.prompt.keymaps, "table")
  check("keymaps", o.keymaps, "table")
  check("start_timeout", o.start_timeout, "number")
  check("review", o.review, "table")
  check("review.diff", o.review.diff, "boolean")
  check("review.open", o.review.open, "string")
  one_of("review.open", o.review.open, REVIEW_OPEN)
  check("review.keymaps", o.review.keymaps, "table")
  for action, lhs in pairs(o.review.keymaps) do
    if lhs ~= false then
      check("review.keymaps." .. tostring(action), lhs, "string")
    end
  end
  check("context", o.context, "table")
  check("context.active_file", o.context.active_file, "boolean")
  if o.editor_tools ~= false then
    check("editor_tools", o.editor_tools, "table")
    for i, name in ipairs(o.editor_tools) do
      one_of(("editor_tools[%d]"):format(i), name, EDITOR_TOOLS)
    end
  end
end

--- Merges tables of options recursively; a list (such as `cmd`) replaces the default whole.
local function merge(base, override)
  for key, value in pairs(override) do
    local old = base[key]
    if type(value) == "table" and type(old) == "table" and not vim.islist(value) and not vim.islist(old) then
      merge(old, value)
    else
      base[key] = vim.deepcopy(value)
    end
  end
  return base
end

--- Merges user options over the defaults; raises a one-line error naming a wrong option.
---@param opts table?
function M.setup(opts)
  local merged = merge(vim.deepcopy(M.defaults), opts or {})
  local ok, err = pcall(validate, merged)
  if not ok then
    error(tostring(err):gsub("^.-:%d+: ", ""), 0)
  end
  M.options = merged
end

--- The server to start when `cmd` is not set, and how it was found: `dave-lsp` on PATH, else
--- the one `:Dave install` installed, else the checkout's own `.venv` (built by hand).
---@return string[]?, string?
local function default_server()
  if vim.fn.executable("dave-lsp") == 1 then
    return { "dave-lsp" }, "dave-lsp on PATH"
  end
  local install = require("dave.install")
  local installed, how = install.server()
  if installed then
    return { installed }, how
  end
  local checkout = install.checkout()
  local bundled = checkout and checkout.root .. "/.venv/bin/dave-lsp"
  if bundled and vim.fn.executable(bundled) == 1 then
    return { bundled }, "the .venv of the dave-lsp checkout this plugin is in"
  end
  if install.running() then
    return nil, "dave: the server is being installed (:Dave install); ask again once it is done"
  end
  return nil,
    "dave: no server found: run :Dave install (it installs one for this plugin), "
      .. "or set `cmd` in require('dave').setup(); see :checkhealth dave"
end

--- The server command and how it was found, or nil and a message that says how to fix it.
---@return string[]?, string?, string?
function M.server_cmd()
  local cmd = M.options.cmd
  if cmd == nil then
    local found, how = default_server()
    if not found then
      return nil, how
    end
    return found, nil, how
  end
  if vim.fn.executable(cmd[1]) ~= 1 then
    return nil,
      ("dave: the server command %q is not an executable (cmd = %s). Install dave-lsp (`pip install dave-lsp`) "
        .. "or fix `cmd` in require('dave').setup(); see :checkhealth dave"):format(cmd[1], table.concat(cmd, " "))
  end
  return cmd, nil, "`cmd` in require('dave').setup()"
end

--- The folder the server's sessions work in: `init_options.cwd`, else Neovim's cwd (the
--- workspace folder the client starts the server with).
function M.cwd()
  return vim.fs.normalize(M.options.init_options.cwd or vim.fn.getcwd())
end

--- path relative to the sessions' folder when inside it, else with `~` for the home folder.
function M.relative(path)
  local cwd = M.cwd()
  if vim.startswith(path, cwd .. "/") then
    return path:sub(#cwd + 2)
  end
  return vim.fn.fnamemodify(path, ":~")
end

--- The editor tools offered to the server (`editor_tools`, false: none).
---@return string[]
function M.editor_tools()
  return M.options.editor_tools and vim.deepcopy(M.options.editor_tools) or {}
end

--- A table that encodes as a JSON object even when empty.
function M.object(t)
  if t == nil or next(t) == nil then
    return vim.empty_dict()
  end
  return t
end

--- `initializationOptions` as sent on the wire.
function M.init_options()
  local init = vim.deepcopy(M.options.init_options)
  if init.env then
    init.env = M.object(init.env)
  end
  return M.object(init)
end

return M
