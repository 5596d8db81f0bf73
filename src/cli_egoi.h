/*
 * cli_egoi.h — `egoi-router egoi list|register|unregister [-c FILE] ...`:
 * the account's webhooks in E-goi, managed through the Marketing API v3
 * (egoi_api.h) with the daemon's router.conf (egoi_api_key, egoi_api_base,
 * egoi_api_timeout, public_url, auth_token).
 *
 *   list        every webhook of the account (paged), those pointing at
 *               this router (public_url, token ignored) marked
 *   register    creates the webhook for one list, unless an identical one
 *               exists; --replace swaps a differing one for that list+URL
 *   unregister  deletes one webhook by id, or every webhook of a list that
 *               points at this router
 *
 * Exit codes (exit_codes.h): 0 done (nothing to do included); 1 invalid
 * input or config, or E-goi refused the request (401/403 bad key, 404,
 * 409, 422); 2 bad command line (unknown action names included); 3 E-goi
 * could not be used (5xx, 408, timeout, network, 429 after the retries).
 *
 * Threads: the main thread only.
 */
#ifndef EGOI_CLI_EGOI_H
#define EGOI_CLI_EGOI_H

/* argv[0] is the subcommand, the rest its options; returns an exit code. */
int cli_egoi_run(int argc, char **argv);

#endif
