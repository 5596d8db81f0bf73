-- A module loaded by require("lib.greet") from tests/rules/eval.lua.
local M = {}

function M.hello(who)
  return "hello " .. who
end

return M
