-- bench/rules.lua — the rules `make bench` measures, in the spirit of
-- rules/example.lua, with every branch exercised by the fixture's actions:
--
--   hard bounces, spam complaints, unsubscribes  -> forward "crm"  (original bytes)
--   orders, carts, goal conversions              -> forward "shop" (original bytes)
--   email / SMS / push engagement                -> engagement.jsonl
--   everything else                              -> dropped, with a reason
--
-- Both forwards go to BENCH_FORWARD_URL (bench.sh points it at a second
-- egoi-router that drops everything); their different names make them two
-- destinations, so a batch can produce two delivery requests.

local SINK = env("BENCH_FORWARD_URL")

local to_crm = {
  email_hard_bounce = true,
  email_spam_complaint = true,
  unsubscribe = true,
}

local to_shop = {
  new_order = true,
  cart_update = true,
  goal_conversion = true,
}

local engagement = {
  email_open = true, email_click = true,
  sms_delivered = true,
  push_open = true, push_click = true,
  web_push_open = true, web_push_click = true,
}

function init()
  if not SINK then
    error("BENCH_FORWARD_URL is not set (bench.sh sets it)")
  end
end

function route(event, meta)
  local action = event.action

  if to_crm[action] then
    forward(SINK, { name = "crm" })
  elseif to_shop[action] then
    forward(SINK, { name = "shop" })
  elseif engagement[action] then
    write("engagement.jsonl")
  else
    drop("not routed: " .. tostring(action))
  end
end
