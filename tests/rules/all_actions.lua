-- Routes every E-goi action of tests/fixtures/batch-all-actions.json:
-- email_* forwarded, sms_* written, everything else dropped by name.

function route(event, meta)
  local a = event.action
  if a:sub(1, 6) == "email_" then
    forward("https://crm.example/egoi", { name = "crm" })
  elseif a:sub(1, 4) == "sms_" then
    write("sms/" .. a .. ".jsonl")
  else
    drop(a)
  end
end
