/*
 * egoi_actions.h — the E-goi webhook actions the router knows by name: the
 * one list in the program (metrics label every event with its action, or
 * "other"). tests/fixtures/actions.json documents the same actions for
 * the tests; test_egoi_actions checks that it agrees with this table.
 *
 * Knowing an action is only about labels: events of any action are routed
 * the same way, by the rules.
 *
 * Threads: constant data, pure functions.
 */
#ifndef EGOI_EGOI_ACTIONS_H
#define EGOI_EGOI_ACTIONS_H

#define EGOI_ACTIONS 38

/* The EGOI_ACTIONS action names, sorted by strcmp (for bsearch). */
extern const char *const *const egoi_actions;

/* Index 0..EGOI_ACTIONS-1 of a known action; -1 for anything else, NULL included. */
int egoi_action_index(const char *action);

#endif
