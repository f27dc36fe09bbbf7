-- Defines :Dave only; the plugin's modules load on first use.
if vim.g.loaded_dave then
  return
end
vim.g.loaded_dave = true

if vim.fn.has("nvim-0.10") ~= 1 then
  vim.api.nvim_create_user_command("Dave", function()
    vim.notify("dave: needs Neovim 0.10 or newer", vim.log.levels.ERROR)
  end, { nargs = "*" })
  return
end

vim.api.nvim_create_user_command("Dave", function(opts)
  require("dave.commands").run(opts)
end, {
  nargs = "*",
  range = true,
  bang = true,
  desc = "Dave: toggle the chat, or ask|cancel|new|delete|sessions|permissions|rules|review|accept|reject|changes|undo"
    .. "|trust|untrust|restart|install",
  complete = function(arglead, cmdline)
    return require("dave.commands").complete(arglead, cmdline)
  end,
})
