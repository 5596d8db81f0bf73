-- bench/micro_rules.lua — the rule `make bench-micro` runs on every event:
-- the peer benchmark's "filter" job (the same decisions nginx + LuaJIT and
-- Node.js make there), so the instruction count measures that job's CPU path.
--
--   hard bounces, spam complaints, unsubscribes -> crm.jsonl (the event as received)
--   new orders                                  -> slack.jsonl, a text line
--   other email_* / sms_* events                -> engagement.jsonl
--   everything else                             -> dropped
local CRM = { email_hard_bounce = true, email_spam_complaint = true, unsubscribe = true }

function route(ev)
  local action = ev.action
  if CRM[action] then
    write("crm.jsonl")
  elseif action == "new_order" then
    local first = ev.contact and ev.contact.fields and ev.contact.fields[1] or {}
    write("slack.jsonl", { line = { text = "New order " .. tostring(ev.action_data.order)
                                          .. " from " .. tostring(first.email) } })
  elseif action:sub(1, 6) == "email_" or action:sub(1, 4) == "sms_" then
    write("engagement.jsonl")
  else
    drop("ignored")
  end
end
