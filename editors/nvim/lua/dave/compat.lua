--- What differs between the Neovim versions the plugin runs on (0.10 and 0.11+), in one
--- place: the version check, and LSP client methods (`client:request()` from 0.11,
--- `client.request()` before).
local M = {}

M.has_011 = vim.fn.has("nvim-0.11") == 1

--- Calls the client method `method` in the form this Neovim has.
---@param client vim.lsp.Client
---@param method string
function M.client_call(client, method, ...)
  if M.has_011 then
    return client[method](client, ...)
  end
  return client[method](...)
end

return M
