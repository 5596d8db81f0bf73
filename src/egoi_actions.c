/*
 * egoi_actions.c — the table of known E-goi actions (see egoi_actions.h).
 *
 * Threads: no state.
 */
#include "egoi_actions.h"

#include <stdlib.h>
#include <string.h>

static const char *const egoi_action_names[] = {
	"cart_update", "cellphone_field_disable", "change_consent", "double_optin",
	"edit_subscription", "email_click", "email_field_disable", "email_hard_bounce",
	"email_open", "email_send", "email_soft_bounce", "email_spam_complaint",
	"facebook_like", "forget_subscription", "goal_conversion", "new_order",
	"phone_field_disable", "product_view", "push_canceled", "push_click", "push_error",
	"push_open", "push_received", "push_send", "resubscription", "sms_delivered",
	"sms_send", "social_share", "subscription", "unsubscribe", "voice_send",
	"web_push_bounce", "web_push_click", "web_push_delivered", "web_push_open",
	"web_push_send", "web_push_subscription", "web_push_unsubscription",
};
/* a name added or removed must change the count that sizes the metrics */
_Static_assert(sizeof egoi_action_names / sizeof egoi_action_names[0] == EGOI_ACTIONS,
	       "EGOI_ACTIONS is not the number of names in egoi_action_names");

const char *const *const egoi_actions = egoi_action_names;

static int egoi_action_cmp(const void *key, const void *elem)
{
	return strcmp(key, *(const char *const *)elem);
}

int egoi_action_index(const char *action)
{
	const char *const *hit;

	if (!action)
		return -1;
	hit = bsearch(action, egoi_actions, EGOI_ACTIONS, sizeof egoi_actions[0], egoi_action_cmp);
	return hit ? (int)(hit - egoi_actions) : -1;
}
