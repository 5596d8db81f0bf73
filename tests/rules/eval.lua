-- Test harness for test_rules.c: an event {"action":"eval","code":"..."}
-- runs its code with event and meta in scope (still on line 1, so errors
-- read "eval:1: ..."); a non-nil result becomes drop(tostring(result)), so
-- the C test can read it back.

function init()
  initialized = true
end

function route(event, meta)
  if event.action ~= "eval" then
    return
  end
  local chunk = assert(load("local event, meta = ... " .. event.code, "=eval"))
  local result = chunk(event, meta)
  if result ~= nil then
    drop(tostring(result))
  end
end
