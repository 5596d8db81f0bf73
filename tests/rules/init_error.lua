-- init() raises on line 5.

function init()
  local t = {}
  error("init exploded")
end

function route(event, meta)
end
