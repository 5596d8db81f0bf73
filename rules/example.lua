-- rules/example.lua — the default rules of egoi-router.
--
-- route(event, meta) runs once per event, in batch order. Call any number of
-- forward(url, opts), write(path, opts), drop(reason); no call = dropped
-- with reason "no_rule".
--
--   hard bounces, spam complaints, unsubscribes  -> the CRM   (env CRM_URL)
--   new orders                                   -> Slack     (env SLACK_URL)
--   email / SMS engagement                       -> engagement.jsonl
--   everything else                              -> dropped, with a reason
--
-- When CRM_URL or SLACK_URL is not set, those events are written to
-- crm.jsonl / slack.jsonl under output_dir instead, so the daemon works with
-- no outside service (`make run`).

local CRM_URL = env("CRM_URL")
local SLACK_URL = env("SLACK_URL")

local to_crm = {
  email_hard_bounce = true,
  email_spam_complaint = true,
  unsubscribe = true,
}

local engagement = {
  email_open = true, email_click = true,
  sms_delivered = true,
}

function init()
  if not CRM_URL then
    log.warn("CRM_URL is not set: CRM events go to crm.jsonl instead")
  end
  if not SLACK_URL then
    log.warn("SLACK_URL is not set: new orders go to slack.jsonl instead")
  end
end

-- The first contact's e-mail address, or "unknown contact".
local function who(event)
  local fields = event.contact and event.contact.fields
  local first = type(fields) == "table" and fields[1]
  return (type(first) == "table" and type(first.email) == "string") and first.email
    or "unknown contact"
end

function route(event, meta)
  local action = event.action

  if to_crm[action] then
    if CRM_URL then
      -- Without opts.body, all CRM events of one batch go out together,
      -- byte for byte as E-goi sent them: {"events":[...]}.
      forward(CRM_URL, { name = "crm" })
    else
      write("crm.jsonl")
    end
    return
  end

  if action == "new_order" then
    local order = type(event.action_data) == "table" and event.action_data.order or "?"
    local text = string.format("New order %s from %s (list %s)",
      tostring(order), who(event), tostring(event.list_id))
    if SLACK_URL then
      forward(SLACK_URL, { name = "slack", body = { text = text } })
    else
      write("slack.jsonl", { line = { text = text } })
    end
    return
  end

  if engagement[action] then
    write("engagement.jsonl")
    return
  end

  drop("not routed: " .. tostring(action))
end
