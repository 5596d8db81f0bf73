/*
 * test_egoi_actions.c — the table of known E-goi actions (src/egoi_actions.c)
 * is the program's list; the test fixture tests/fixtures/actions.json must
 * document exactly the same actions, and the table must stay sorted for
 * its binary search.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "egoi_actions.h"
#include "test_util.h"

static void table_is_sorted_and_found(void **state)
{
	(void)state;
	for (int i = 0; i < EGOI_ACTIONS; i++) {
		assert_non_null(egoi_actions[i]);
		if (i > 0 && strcmp(egoi_actions[i - 1], egoi_actions[i]) >= 0)
			fail_msg("egoi_actions not strictly sorted at '%s', '%s'", egoi_actions[i - 1],
				 egoi_actions[i]);
		assert_int_equal(egoi_action_index(egoi_actions[i]), i);
	}
	assert_int_equal(egoi_action_index("email_sent"), -1);
	assert_int_equal(egoi_action_index(""), -1);
	assert_int_equal(egoi_action_index("Email_open"), -1);
	assert_int_equal(egoi_action_index(NULL), -1);
}

/* Every action of the fixture is in the table and every table entry is in
 * the fixture (same count, no repeats). */
static void fixture_agrees_with_table(void **state)
{
	size_t len;
	char *json = tu_fixture("actions.json", &len), errbuf[256];
	yajl_val root = yajl_tree_parse(json, errbuf, sizeof errbuf);
	int seen[EGOI_ACTIONS] = { 0 };

	(void)state;
	assert_non_null(root);
	assert_true(YAJL_IS_ARRAY(root));
	for (size_t i = 0; i < root->u.array.len; i++) {
		const char *path[] = { "action", NULL };
		yajl_val a = yajl_tree_get(root->u.array.values[i], path, yajl_t_string);
		int idx;

		assert_non_null(a);
		idx = egoi_action_index(YAJL_GET_STRING(a));
		if (idx < 0)
			fail_msg("fixture action '%s' is not in src/egoi_actions.c", YAJL_GET_STRING(a));
		if (seen[idx]++)
			fail_msg("fixture lists '%s' twice", YAJL_GET_STRING(a));
	}
	for (int i = 0; i < EGOI_ACTIONS; i++)
		if (!seen[i])
			fail_msg("src/egoi_actions.c has '%s', the fixture does not", egoi_actions[i]);
	assert_int_equal(root->u.array.len, EGOI_ACTIONS);
	yajl_tree_free(root);
	free(json);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(table_is_sorted_and_found),
		cmocka_unit_test(fixture_agrees_with_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
