/*
 * deliver_settings.c — the delivery thread's settings from router.conf
 * (forward_timeout, forward_max_attempts, forward_max_age,
 * forward_backoff_max, forward_concurrency, forward_signing_secret) as one
 * block, checked whole when it is made, and handed over on SIGHUP.
 *
 * Hand-over: deliver_reconfigure (main thread) swaps the block into
 * d->pending with one atomic exchange and wakes the loop; the delivery
 * thread exchanges it out at the top of its next iteration
 * (deliver_settings_take) and copies it into the fields it reads, so
 * nothing the loop reads changes under it. Whoever gets a block out of
 * d->pending owns it: a block replaced before the thread took it is freed
 * by the replacer. Requests already in flight keep the timeout and
 * signature they were started with; the next request uses the new ones.
 * A block is zeroed before it is freed: it holds the signing key.
 */
#include "deliver_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct deliver_settings *deliver_settings_new(const struct deliver_options *opt, char *err,
					      size_t errlen)
{
	struct deliver_settings *s = NULL;

	if (!opt || opt->concurrency < 1 || opt->timeout_ms < 1 || opt->max_attempts < 0 ||
	    opt->max_age_ms < 0 || opt->backoff_max_ms < 0) {
		snprintf(err, errlen, "delivery: invalid options");
		goto fail;
	}
	s = calloc(1, sizeof *s);
	if (!s) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	s->timeout_ms = opt->timeout_ms;
	s->limits.max_attempts = opt->max_attempts;
	s->limits.max_age_ms = opt->max_age_ms;
	s->limits.backoff_max_s = (double)(opt->backoff_max_ms > 0 ? opt->backoff_max_ms
								   : DELIVER_BACKOFF_MAX_MS) / 1000.0;
	s->per_host = opt->concurrency;
	if (opt->signing_secret) {
		int n = deliver_signing_key(opt->signing_secret, s->signer.key, sizeof s->signer.key);

		if (n <= 0) {
			snprintf(err, errlen, "forward_signing_secret is not whsec_<base64>");
			goto fail;
		}
		s->signer.key_len = (size_t)n;
	}
	return s;
fail:
	deliver_settings_free(s);
	return NULL;
}

void deliver_settings_free(struct deliver_settings *s)
{
	if (!s)
		return;
	explicit_bzero(s, sizeof *s);
	free(s);
}

void deliver_settings_apply(struct deliver *d, const struct deliver_settings *s)
{
	d->timeout_ms = s->timeout_ms;
	d->limits = s->limits;
	d->signer = s->signer;
	if (s->per_host != d->per_host && d->multi &&
	    curl_multi_setopt(d->multi, CURLMOPT_MAX_HOST_CONNECTIONS, s->per_host) != CURLM_OK)
		log_msg(LOG_WARN, NULL, "delivery: libcurl kept its connection limit per host; "
			"forward_concurrency still bounds the requests in flight");
	d->per_host = s->per_host;
}

void deliver_reconfigure(struct deliver *d, struct deliver_settings *s)
{
	if (!d) {
		deliver_settings_free(s);
		return;
	}
	deliver_settings_free(atomic_exchange(&d->pending, s));
	curl_multi_wakeup(d->multi);
}

/* 1 when s differs from what d runs with (every reload hands a block over). */
static int deliver_settings_differ(const struct deliver *d, const struct deliver_settings *s)
{
	return d->timeout_ms != s->timeout_ms || d->per_host != s->per_host ||
	       d->limits.max_attempts != s->limits.max_attempts ||
	       d->limits.max_age_ms != s->limits.max_age_ms ||
	       d->limits.backoff_max_s != s->limits.backoff_max_s ||
	       d->signer.key_len != s->signer.key_len ||
	       memcmp(d->signer.key, s->signer.key, s->signer.key_len) != 0;
}

void deliver_settings_take(struct deliver *d)
{
	struct deliver_settings *s = atomic_exchange(&d->pending, NULL);
	int changed;

	if (!s)
		return;
	changed = deliver_settings_differ(d, s);
	deliver_settings_apply(d, s);
	deliver_settings_free(s);
	if (changed)
		log_msg(LOG_INFO, NULL, "delivery: new forward_* settings in force for the next "
			"requests");
}
