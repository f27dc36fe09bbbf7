-- luacheck configuration of the Neovim plugin (editors/nvim/scripts/lint.sh runs it).
-- Neovim runs the plugin on LuaJIT; `vim` is the one global it uses (and sets fields of,
-- e.g. vim.bo[buf].modifiable). No warning is ignored: fix the code instead.
std = "luajit"
globals = { "vim" }
max_line_length = 120
include_files = { "lua/**/*.lua", "plugin/**/*.lua" }
