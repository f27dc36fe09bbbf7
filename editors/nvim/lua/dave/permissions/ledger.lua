--- The ledger of permission requests: which wait, oldest first, and each one's end. Free of
--- UI: it records a request, sends its answer (`dave/permission`) and settles it once, and
--- tells its listener (dave.permissions), which closes what showed the request. A request
--- that ended (answered, resolved elsewhere, its turn over) stays ended: a late answer to it
--- is never sent.
local client = require("dave.client")
local config = require("dave.config")

local M = {}

---@class dave.PermissionRequest
---@field requestId string
---@field sessionId string
---@field toolName string
---@field message string? the server's question, e.g. `Allow Write notes.txt?`
---@field input table? the tool's input, shown in full in the chat
---@field allowAlways {rule: string, label: string}? what "Allow always" would add (newer servers)
---@field title string? the chat's title
---@field chat dave.Chat? the chat the request is shown in
---@field block integer? the chat block's handle (Chat:add_block)
---@field ended boolean? answered or resolved elsewhere: a late answer is dropped
---@field decided boolean? a question the plugin asked itself was decided (not dropped)
---@field prompt_win integer? a floating window the select UI opened
---@field proposal table? what a file tool would write (reviewed in a diff tab)
---@field questions table[]? the model's questions (AskUserQuestion)
---@field plan string? the plan of an ExitPlanMode request (markdown)
---@field plan_win integer? the float that shows the plan
---@field own dave.OwnQuestion? a question the plugin asks itself (folder trust): shown and
--- answered as a request, its answer never sent as `dave/permission`

---@class dave.OwnQuestion
---@field lines string[] the block shown in the chat (what is asked, in full)
---@field prompt string the menu's prompt (what is asked, in full)
---@field notice string the notification that it waits (short)
---@field choices {label: string, outcome: string}[] [1] for `ga`/`gA`, [2] for `gd`
---@field keys string[] what `ga` and `gd` do, for the block's key line
---@field decide fun(index: integer) called once, with the choice's index
---@field dropped fun()? called when the request ends unanswered (its turn was cancelled)

local pending = {} ---@type dave.PermissionRequest[] every request not answered yet, oldest first

--- What the owner of the UI hears: settled(req, outcome) once per request, when it ends
--- (outcome: how, or nil); failed(message) when an answer could not be sent.
local listener = {
  settled = function(_, _) end,
  failed = function(_) end,
}

---@param on {settled: fun(req: dave.PermissionRequest, outcome: string?), failed: fun(message: string)}
function M.listen(on)
  listener = on
end

--- Whether the request is reviewed in a diff tab.
---@param req dave.PermissionRequest
function M.reviewed(req)
  return type(req.proposal) == "table" and config.options.review.diff
end

--- A new request waits.
---@param req dave.PermissionRequest
function M.add(req)
  table.insert(pending, req)
end

--- The request is over (answered here or resolved elsewhere): it leaves the ledger, a
--- question the plugin asked itself that nobody answered hears it was dropped, and the
--- listener closes what showed it. A second settle does nothing.
---@param req dave.PermissionRequest
---@param outcome string? how it ended, for its block in the chat
function M.settle(req, outcome)
  if req.ended then
    return
  end
  req.ended = true
  if req.own and not req.decided and req.own.dropped then
    vim.schedule(req.own.dropped)
  end
  for i = #pending, 1, -1 do
    if pending[i] == req then
      table.remove(pending, i)
    end
  end
  listener.settled(req, outcome)
end

--- Sends the answer and settles the request. extra: more params (`answers`, `permissionMode`).
---@param req dave.PermissionRequest
---@param decision string allow, allowAlways or deny
---@param outcome string what its block says
---@param reason string? the reason the model sees (deny)
---@param edited string? the user's version of a proposal (`editedContent`)
---@param extra table?
function M.answer(req, decision, outcome, reason, edited, extra)
  if req.ended then
    return
  end
  client.request("dave/permission", vim.tbl_extend("force", extra or {}, {
    requestId = req.requestId,
    decision = decision,
    reason = reason,
    editedContent = edited,
  }), function(err)
    if err then
      listener.failed(err.message or "the permission answer failed")
    end
  end)
  M.settle(req, outcome)
end

--- The requests waiting now, oldest first (a copy: settling one while walking it is safe).
---@return dave.PermissionRequest[]
function M.all()
  return vim.list_slice(pending)
end

--- The oldest request waiting in the session (nil: any session); only_reviewed: proposals
--- reviewed in a diff tab only.
---@param session_id string?
---@param only_reviewed boolean?
---@return dave.PermissionRequest?
function M.first(session_id, only_reviewed)
  for _, req in ipairs(pending) do
    if not req.ended and (session_id == nil or req.sessionId == session_id)
      and (not only_reviewed or M.reviewed(req)) then
      return req
    end
  end
end

--- How many requests wait for an answer.
function M.count()
  return #pending
end

return M
