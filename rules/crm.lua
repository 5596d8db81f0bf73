-- rules/crm.lua — keep a CRM's contact status in sync with E-goi.
--
-- CRM_URL must be set. Contact-status events are sent to the CRM as one
-- compact JSON object per event, with a signature header the CRM can check
-- (HMAC-SHA256 of the body with CRM_SECRET, when that variable is set).
-- Everything else is dropped.

local CRM_URL = env("CRM_URL")
local CRM_SECRET = env("CRM_SECRET")

local status_for = {
  email_hard_bounce = "bounced",
  email_spam_complaint = "complained",
  unsubscribe = "unsubscribed",
  forget_subscription = "erased",
  subscription = "subscribed",
  resubscription = "subscribed",
  double_optin = "confirmed",
}

function init()
  if not CRM_URL then
    error("rules/crm.lua needs the CRM_URL environment variable")
  end
end

function route(event, meta)
  local status = status_for[event.action]
  if not status then
    drop("not a contact status change")
    return
  end
  local contact = event.contact or {}
  local body = json.encode({
    contact_ids = contact.base or {},
    status = status,
    list_id = event.list_id,
    at = event.action_date,        -- stays an integer: 631152000, not 6.3e8
    source = "e-goi",
  })
  local headers = { ["X-Request-Id"] = meta.request_id }
  if CRM_SECRET then
    headers["X-Signature"] = "sha256=" .. hmac_sha256(CRM_SECRET, body)
  end
  forward(CRM_URL, { name = "crm", body = body, headers = headers,
                     content_type = "application/json" })
end
