-- rules/slack.lua — post a readable message to a Slack incoming webhook.
--
-- SLACK_URL must be set (https://hooks.slack.com/services/...). New orders,
-- cart updates and goal conversions become one Slack message each; every
-- other event is dropped. Slack wants {"text": "..."} as the body.

local SLACK_URL = env("SLACK_URL")

local templates = {
  new_order = "New order %s from %s",
  cart_update = "Cart %s updated by %s",
  goal_conversion = "Goal %s reached by %s",
}

local function first_email(event)
  local f = event.contact and event.contact.fields and event.contact.fields[1]
  return (type(f) == "table" and f.email) or "unknown contact"
end

-- action_data carries one key whose name depends on the action
-- (order, cart, goal, ...): take whichever is there.
local function data_value(event)
  if type(event.action_data) ~= "table" then return "?" end
  local _, v = next(event.action_data)
  return v == nil and "?" or tostring(v)
end

function init()
  if not SLACK_URL then
    error("rules/slack.lua needs the SLACK_URL environment variable")
  end
end

function route(event, meta)
  local template = templates[event.action]
  if not template then
    drop("not for slack")
    return
  end
  forward(SLACK_URL, {
    name = "slack",
    body = { text = string.format(template, data_value(event), first_email(event)) },
  })
end
