-- One branch per kind of decision, with every option, for test_rules.c.

local branches = {
  email_open = function()
    forward("https://a.example/hook")
  end,
  email_click = function(event)
    forward("http://b.example/x", {
      body = { id = event.action_date, list = event.list_id },
      headers = { ["X-B"] = "2", ["X-A"] = "1" },
      method = "put",
      content_type = "application/x-test",
      name = "crm",
    })
  end,
  email_send = function()
    forward("https://c.example/", { body = "plain text", method = "POST" })
  end,
  sms_send = function()
    write("sms/out.jsonl")
  end,
  sms_delivered = function()
    write("a.txt", { line = "hello" })
  end,
  voice_send = function(event)
    write("b.jsonl", { line = { n = event.action_date } })
  end,
  unsubscribe = function()
    drop("unsub")
  end,
  subscription = function()
    drop()
  end,
  several = function()
    drop("first")
    write("log.txt")
  end,
  boom = function()
    forward("https://partial.example/")
    write("partial.txt")
    error("boom")
  end,
  flood = function()
    for _ = 1, 1000 do
      drop("again")
    end
  end,
}

function route(event, meta)
  local branch = branches[event.action]
  if branch then
    branch(event, meta)
  end
end
