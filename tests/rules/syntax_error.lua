-- Fails to compile: line 4 has a syntax error.

function route(event, meta)
  local x = = 1
end
