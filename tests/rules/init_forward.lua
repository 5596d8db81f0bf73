-- Calls forward() from init(), which is not allowed.

function init()
  forward("https://x.example/")
end

function route(event, meta)
end
