/*
 * version.h — the release version, printed by --version, logged at
 * start-up and exported as egoi_router_build_info{version}.
 *
 * Threads: a constant.
 */
#ifndef EGOI_VERSION_H
#define EGOI_VERSION_H

#define EGOI_ROUTER_VERSION "0.1.0"

#endif
