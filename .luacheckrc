-- .luacheckrc — luacheck (Debian package lua-check) for egoi-router rules:
--   luacheck rules/
-- Rules run in Lua 5.4 inside the router's sandbox (src/rules_sandbox.c and
-- src/rules_api.c), so the standard globals are those the sandbox keeps,
-- plus the rule API. A misspelt API call (fowrard) or a global a rule
-- leaks by mistake is then reported before the router sees it.
std = "lua54"

-- The functions a rules file defines for the router to call.
globals = { "init", "route" }

-- What the sandbox gives. Removed from the standard set: dofile, loadfile,
-- collectgarbage, warn, string.dump, os.* except time/date/clock, io,
-- package, debug, coroutine (not opened). print is the router's logger.
read_globals = {
  "forward", "write", "drop", "env", "hmac_sha256", "now", "print",
  json = { fields = { "encode", "decode", "null" } },
  log = { fields = { "debug", "info", "warn", "error" } },
  os = { fields = { "time", "date", "clock" } },
  "assert", "error", "getmetatable", "ipairs", "load", "next", "pairs", "pcall",
  "rawequal", "rawget", "rawlen", "rawset", "require", "select", "setmetatable",
  "tonumber", "tostring", "type", "xpcall", "_G", "_VERSION",
  string = { fields = { "byte", "char", "find", "format", "gmatch", "gsub", "len", "lower",
                       "match", "pack", "packsize", "rep", "reverse", "sub", "unpack",
                       "upper" } },
  table = { other_fields = true },
  math = { other_fields = true },
  utf8 = { other_fields = true },
}
not_globals = { "dofile", "loadfile", "collectgarbage", "warn", "io", "package", "debug",
                "coroutine" }

-- route(event, meta): rules often use only the event.
unused_args = false
