# egoi-router — build, run, test, bench.
#
#   make            build build/egoi-router (+ the OpenSSL 3 shims in build/lib)
#   make run        install missing packages (root), dev certificate, start on :8443
#   make test       install missing packages (root), build, run every test
#   make faults     only the fault suite (its scenarios run in parallel)
#   make test SANITIZE=1   the same under AddressSanitizer + UBSan (in build/san)
#   make CFLAGS=-O0 ...    your CFLAGS/CPPFLAGS/LDFLAGS are added after the project's
#                          (CFLAGS replaces only the default -O2 -g); BUILD=DIR builds elsewhere
#   make build-flags       check that: CFLAGS=-O0 keeps the project's flags and builds (run by test)
#   make bench      load the daemon over HTTPS keep-alive, print events/s, p50/p99, RSS
#   make bench-micro  parse → rules → decisions in process under callgrind: Ir/event
#   make soak       steady load for SOAK_MINUTES (30): RSS, fds, outbox, backlog each minute
#   make fuzz       libFuzzer (clang 14) on the batch and JSON parsers, FUZZ_SECONDS each
#   make conf-example   regenerate router.conf.example from the config key table
#   make install PREFIX=/usr/local DESTDIR=   binary, its shims, man page, examples
#   make uninstall  removes exactly what install put there (same PREFIX, DESTDIR)
#   make clean      removes build output (build/) only, never data (var/)

CC       ?= cc
SANITIZE ?= 0
ifeq ($(SANITIZE),1)
BUILD    := build/san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
BUILD    := build
SANFLAGS :=
endif

# Flags compose: what you pass (make CFLAGS=-O0, CPPFLAGS=..., LDFLAGS=...)
# goes last on every line, after what the project needs (standard, warnings,
# hardening, include paths), so it can add or override without dropping them.
# CFLAGS only replaces the default optimisation and debug flags.
CFLAGS   ?= -O2 -g
WARNINGS := -Wall -Wextra -Werror -Wshadow -Wformat=2
PKGS     := lua5.4 yajl libcurl sqlite3 libcrypto uuid libsystemd libpq
PKGCFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null) -I/usr/include/lua5.4 -Isrc
PROJECT_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARNINGS) -fstack-protector-strong \
            -D_FORTIFY_SOURCE=2 -MMD -MP $(PKGCFLAGS)
ALL_CFLAGS  = $(PROJECT_CFLAGS) $(SANFLAGS) $(CPPFLAGS) $(CFLAGS)
ALL_LDFLAGS = $(SANFLAGS) -pthread $(LDFLAGS)
LIBS     := -lcivetweb -l:libssl.so.3 -llua5.4-cjson $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm -ldl
# cmocka is for the tests only: their compile and link lines, never the daemon's.
TEST_CFLAGS := $(shell pkg-config --cflags cmocka 2>/dev/null)
TEST_LIBS   := $(shell pkg-config --libs cmocka 2>/dev/null)

# The shims must come first and must not be dropped by --as-needed: civetweb's
# dlopen("libssl.so") / dlopen("libcrypto.so") then find them.
SHIMS    := $(BUILD)/lib/libssl.so $(BUILD)/lib/libcrypto.so
# The first rpath is where `make install` puts them ($(PREFIX)/lib/egoi-router
# beside $(PREFIX)/bin); the other two find them in the build tree (binary in
# $(BUILD), tests in $(BUILD)/tests).
SHIMLINK := -Wl,--no-as-needed $(SHIMS) -Wl,--as-needed -Wl,-rpath,'$$ORIGIN/../lib/egoi-router' \
            -Wl,-rpath,'$$ORIGIN/lib' -Wl,-rpath,'$$ORIGIN/../lib'

SRC      := $(filter-out src/main.c src/tls_compat.c,$(wildcard src/*.c))
OBJ      := $(SRC:src/%.c=$(BUILD)/obj/%.o)
BIN      := $(BUILD)/egoi-router

UNIT     := $(patsubst tests/unit/%.c,%,$(wildcard tests/unit/test_*.c))
UNITBIN  := $(UNIT:%=$(BUILD)/tests/%)
E2EBIN   := $(BUILD)/tests/test_e2e
FAULTBIN := $(BUILD)/tests/test_faults

.PHONY: all run test unit e2e browser faults bench bench-micro soak clean deps deps-bench cert fuzz conf-example \
        build-flags install uninstall install-check man-check clean-check systemd-check rules-check \
        prefix-check layout-check
all: $(BIN)

deps:
	@scripts/deps.sh build

deps-bench:
	@scripts/deps.sh bench

# Everything built depends on the flags it was built with: $(BUILD)/.flags
# holds them (the link line's run path too) and is rewritten (when make
# reads this file) only when they change, so `make CFLAGS=-O0` in a built
# tree rebuilds instead of keeping objects made with other flags, and a new
# run path relinks.
FLAGSFILE := $(BUILD)/.flags
FLAGSTEXT := $(CC) $(ALL_CFLAGS) $(TEST_CFLAGS) | $(ALL_LDFLAGS) $(SHIMLINK)
ifneq ($(file <$(FLAGSFILE)),$(FLAGSTEXT))
$(shell mkdir -p $(BUILD))
$(file >$(FLAGSFILE),$(FLAGSTEXT))
endif
$(FLAGSFILE): ;

$(BUILD)/lib/libssl.so: src/tls_compat.c $(FLAGSFILE)
	@mkdir -p $(@D)
	$(CC) -shared -fPIC $(WARNINGS) $(CPPFLAGS) $(CFLAGS) -DTLS_COMPAT_SSL \
	    -Wl,-soname,libssl.so $(LDFLAGS) -o $@ $< -Wl,--no-as-needed -l:libssl.so.3 -l:libcrypto.so.3

$(BUILD)/lib/libcrypto.so: src/tls_compat.c $(FLAGSFILE)
	@mkdir -p $(@D)
	$(CC) -shared -fPIC $(WARNINGS) $(CPPFLAGS) $(CFLAGS) -Wl,-soname,libcrypto.so \
	    $(LDFLAGS) -o $@ $< -Wl,--no-as-needed -l:libcrypto.so.3

$(BUILD)/obj/%.o: src/%.c $(FLAGSFILE)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/libcore.a: $(OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN): $(BUILD)/obj/main.o $(BUILD)/libcore.a $(SHIMS) $(FLAGSFILE)
	$(CC) $(ALL_LDFLAGS) -o $@ $(BUILD)/obj/main.o $(SHIMLINK) $(BUILD)/libcore.a $(LIBS)

$(BUILD)/tests/obj/%.o: tests/%.c $(FLAGSFILE)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(TEST_CFLAGS) -Itests -c -o $@ $<

# Unit tests link only the archive: each pulls just the modules it uses.
$(BUILD)/tests/test_%: $(BUILD)/tests/obj/unit/test_%.o $(BUILD)/libcore.a $(SHIMS)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(SHIMLINK) $(BUILD)/libcore.a $(LIBS) $(TEST_LIBS)

# Both end-to-end suites link one archive of what they share (harness, HTTP
# receiver, fault destination, cmocka fixture); each adds its own scenarios
# and main: tests/e2e/ the behaviour suite, tests/faults/ the fault suite.
E2ESHARED := $(addprefix tests/e2e/,harness.c harness_client.c harness_data.c receiver.c \
             faulty.c faulty_conn.c e2e_fixture.c)
E2ELIBOBJ := $(patsubst tests/%.c,$(BUILD)/tests/obj/%.o,$(E2ESHARED)) $(BUILD)/tests/obj/pg_cluster.o
E2ELIB    := $(BUILD)/tests/libe2e.a
E2EOBJ    := $(patsubst tests/%.c,$(BUILD)/tests/obj/%.o, \
             $(filter-out $(E2ESHARED),$(wildcard tests/e2e/*.c)))
FAULTOBJ  := $(patsubst tests/%.c,$(BUILD)/tests/obj/%.o,$(wildcard tests/faults/*.c))

$(E2ELIB): $(E2ELIBOBJ)
	@rm -f $@
	ar rcs $@ $^

$(E2EBIN): $(E2EOBJ) $(E2ELIB) $(BUILD)/libcore.a $(SHIMS)
	$(CC) $(ALL_LDFLAGS) -o $@ $(E2EOBJ) $(E2ELIB) $(SHIMLINK) $(BUILD)/libcore.a $(LIBS) \
	    $(TEST_LIBS)

$(FAULTBIN): $(FAULTOBJ) $(E2ELIB) $(BUILD)/libcore.a $(SHIMS)
	$(CC) $(ALL_LDFLAGS) -o $@ $(FAULTOBJ) $(E2ELIB) $(SHIMLINK) $(BUILD)/libcore.a $(LIBS) \
	    $(TEST_LIBS)

# The backend tests start a PostgreSQL cluster of their own (tests/pg_cluster.c).
$(BUILD)/tests/test_outbox_backends: $(BUILD)/tests/obj/unit/test_outbox_backends.o \
                                     $(BUILD)/tests/obj/pg_cluster.o $(BUILD)/libcore.a $(SHIMS)
	$(CC) $(ALL_LDFLAGS) -o $@ $(filter %.o,$^) $(SHIMLINK) $(BUILD)/libcore.a $(LIBS) $(TEST_LIBS)

unit: $(UNITBIN)
	@fail=0; for t in $(UNITBIN); do echo "== $$t"; $$t || fail=1; done; exit $$fail

e2e: $(BIN) $(E2EBIN)
	@echo "== $(E2EBIN)"; EGOI_ROUTER_BIN=$(abspath $(BIN)) $(E2EBIN)

# The status console in headless chromium (tests/browser/console_browser.py):
# login, a dead letter replayed by a click; screenshots in $(BUILD)/browser.
browser: $(BIN)
	@echo "== tests/browser/console_browser.py"; \
	    /usr/bin/python3 tests/browser/console_browser.py $(BIN) $(BUILD)/browser

# Every fault scenario is its own process, all at once (they mostly wait), so
# the suite takes about as long as its longest scenario; logs in $(BUILD)/faults.
faults: $(BIN) $(FAULTBIN)
	@echo "== $(FAULTBIN)"; EGOI_ROUTER_BIN=$(abspath $(BIN)) \
	    scripts/run-faults.sh $(FAULTBIN) $(BUILD)/faults

test: deps
	@$(MAKE) --no-print-directory all $(UNITBIN) $(E2EBIN) $(FAULTBIN)
	@$(MAKE) --no-print-directory build-flags
	@$(MAKE) --no-print-directory prefix-check
	@$(MAKE) --no-print-directory layout-check
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory e2e
	@$(MAKE) --no-print-directory browser
	@$(MAKE) --no-print-directory faults
	@$(MAKE) --no-print-directory man-check
	@$(MAKE) --no-print-directory rules-check
	@$(MAKE) --no-print-directory install-check
	@$(MAKE) --no-print-directory systemd-check
	@$(MAKE) --no-print-directory clean-check

# Every static function in src/*.c carries its file's prefix
# (scripts/check-prefixes.sh).
prefix-check:
	@scripts/check-prefixes.sh src

# README › Layout names every file in src/ and nothing that is gone
# (scripts/check-layout.sh).
layout-check:
	@scripts/check-layout.sh README.md

# The man page renders without warnings and names every config key (from
# --help, which prints the key table), every exit code and every signal.
man-check: $(BIN)
	@scripts/check-man.sh $(BIN) docs/egoi-router.8

# Each rules/NAME.lua decides what rules/tests/NAME.jsonl expects, and
# luacheck finds nothing in rules/ (scripts/check-rules.sh).
rules-check: $(BIN)
	@scripts/check-rules.sh $(BIN)

# install into a temporary DESTDIR, run the installed binary away from the
# build tree, uninstall, nothing left (scripts/check-install.sh).
install-check: $(BIN)
	@scripts/check-install.sh

# The installed unit: systemd-analyze verify accepts it, security rates it
# at most 3.0 (scripts/check-systemd.sh; offline, no running systemd).
systemd-check: $(BIN)
	@scripts/check-systemd.sh

# `make clean` keeps data: var/ (the default data_dir) survives it.
clean-check:
	@scripts/check-clean.sh

# `make CFLAGS=-O0` keeps the project's flags and builds: checked on its own
# objects in $(BUILD)/cflags-o0 (scripts/check-build-flags.sh).
build-flags:
	@scripts/check-build-flags.sh $(BUILD)

cert:
	@scripts/dev-cert.sh certs

# router.conf.example is generated from the key table (test_config checks it).
conf-example: $(BUILD)/libcore.a $(SHIMS)
	@printf '#include "config.h"\nint main(void) { config_print_example(stdout); return 0; }\n' \
	    > $(BUILD)/print_example.c
	$(CC) $(ALL_CFLAGS) -o $(BUILD)/print-example $(BUILD)/print_example.c $(SHIMLINK) \
	    $(BUILD)/libcore.a $(LIBS) $(ALL_LDFLAGS)
	$(BUILD)/print-example > router.conf.example

run: deps
	@$(MAKE) --no-print-directory all
	@scripts/dev-cert.sh certs
	@scripts/run-dev.sh $(BIN)

bench: deps deps-bench
	@$(MAKE) --no-print-directory all
	@scripts/bench.sh $(BIN)

# The CPU path without network or files, counted in instructions (callgrind),
# which do not move with the machine's load (scripts/bench-micro.sh).
MICRO := $(BUILD)/bench-micro
$(MICRO): bench/micro.c $(BUILD)/libcore.a $(SHIMS)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(ALL_LDFLAGS) $(SHIMLINK) $(BUILD)/libcore.a $(LIBS)

bench-micro: deps
	@scripts/deps.sh micro
	@$(MAKE) --no-print-directory $(MICRO)
	@scripts/bench-micro.sh $(MICRO) $(BUILD)/bench-micro-out

# The soak's load generator: fixed-rate HTTPS posts with libcurl (wrk has no
# rate option). Built only for `make soak`.
SOAKLOAD := $(BUILD)/soak-load
$(SOAKLOAD): bench/soak_load.c
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(shell pkg-config --libs libcurl 2>/dev/null)

soak: deps deps-bench
	@$(MAKE) --no-print-directory all $(SOAKLOAD)
	@scripts/soak.sh $(BIN) $(SOAKLOAD)

# Fuzzing: clang's libFuzzer + ASan + UBSan, everything in build/fuzz (its own
# objects, never mixed with build/ or build/san/). Each target runs on a copy
# of its seed corpus, so what it finds stays out of tests/fuzz/corpus; a crash
# fails the target and leaves its input as build/fuzz/crash-*.
FUZZ_SECONDS ?= 30
FUZZCC   ?= clang-14
FUZZDIR  := build/fuzz
FUZZFLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
             -fno-omit-frame-pointer
# The fuzz build has its own compiler and optimisation (FUZZFLAGS, not CFLAGS)
# but the same warnings and include paths as every other build.
FUZZCFLAGS := $(FUZZFLAGS) -std=c11 -D_GNU_SOURCE $(WARNINGS) -MMD -MP $(PKGCFLAGS)
# target:corpus directory (tests/fuzz/corpus/<dir>)
FUZZ_TARGETS := batch:batch json_lua:json json_lua_lazy:batch
FUZZBIN  := $(foreach t,$(FUZZ_TARGETS),$(FUZZDIR)/fuzz_$(firstword $(subst :, ,$(t))))

$(FUZZDIR)/obj/%.o: src/%.c
	@mkdir -p $(@D)
	$(FUZZCC) $(FUZZCFLAGS) -c -o $@ $<

$(FUZZDIR)/obj/fuzz/%.o: tests/fuzz/%.c
	@mkdir -p $(@D)
	$(FUZZCC) $(FUZZCFLAGS) -c -o $@ $<

$(FUZZDIR)/fuzz_batch: $(FUZZDIR)/obj/fuzz/fuzz_batch.o $(FUZZDIR)/obj/batch.o $(FUZZDIR)/obj/util.o
	$(FUZZCC) $(FUZZFLAGS) -pthread -o $@ $^ $(LIBS)

FUZZJSON := $(addprefix $(FUZZDIR)/obj/,fuzz/fuzz_equal.o batch.o util.o json_lua.o json_lua_encode.o \
	    json_lua_lazy.o json_lua_lazy_meta.o)
$(FUZZDIR)/fuzz_json_lua: $(FUZZDIR)/obj/fuzz/fuzz_json_lua.o $(FUZZJSON)
	$(FUZZCC) $(FUZZFLAGS) -pthread -o $@ $^ $(LIBS)

$(FUZZDIR)/fuzz_json_lua_lazy: $(FUZZDIR)/obj/fuzz/fuzz_json_lua_lazy.o $(FUZZJSON)
	$(FUZZCC) $(FUZZFLAGS) -pthread -o $@ $^ $(LIBS)

fuzz:
	@scripts/deps.sh fuzz
	@$(MAKE) --no-print-directory $(FUZZBIN)
	@for t in $(FUZZ_TARGETS); do \
	    bin=$(FUZZDIR)/fuzz_$${t%%:*}; corpus=$(FUZZDIR)/corpus-$${t#*:}; \
	    mkdir -p $$corpus && cp -f tests/fuzz/corpus/$${t#*:}/* $$corpus/ || exit 1; \
	    echo "== $$bin ($(FUZZ_SECONDS) s)"; \
	    $$bin -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	        -artifact_prefix=$(FUZZDIR)/ $$corpus || exit 1; \
	done

# Install layout. The shims are private to egoi-router (they are not the
# system's libssl.so), so they go in their own directory, found through the
# rpath $$ORIGIN/../lib/egoi-router: BINDIR and LIBDIR must stay siblings.
PREFIX   ?= /usr/local
DESTDIR  ?=
BINDIR   := $(PREFIX)/bin
LIBDIR   := $(PREFIX)/lib/egoi-router
MANDIR   := $(PREFIX)/share/man
SHAREDIR := $(PREFIX)/share/egoi-router
# systemd reads units from /usr/local/lib/systemd/system and /usr/lib/systemd/system;
# the unit's @BINDIR@ and @SYSCONFDIR@ (its config is SYSCONFDIR/egoi-router/router.conf)
# are replaced at install time.
UNITDIR  := $(PREFIX)/lib/systemd/system
SYSCONFDIR ?= /etc
UNIT_FILE := $(wildcard scripts/egoi-router.service)
RULEFILES := $(wildcard rules/*.lua)
# Every file install writes, as DESTDIR-less paths: uninstall removes these.
INSTALLED := $(BINDIR)/egoi-router $(LIBDIR)/libssl.so $(LIBDIR)/libcrypto.so \
             $(MANDIR)/man8/egoi-router.8 $(SHAREDIR)/router.conf.example \
             $(RULEFILES:%=$(SHAREDIR)/%) \
             $(if $(UNIT_FILE),$(UNITDIR)/egoi-router.service)

install: $(BIN) $(SHIMS)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(MANDIR)/man8 \
	    $(DESTDIR)$(SHAREDIR)/rules
	install -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/egoi-router
	install -m 0644 $(SHIMS) $(DESTDIR)$(LIBDIR)/
	install -m 0644 docs/egoi-router.8 $(DESTDIR)$(MANDIR)/man8/egoi-router.8
	install -m 0644 router.conf.example $(DESTDIR)$(SHAREDIR)/router.conf.example
	install -m 0644 $(RULEFILES) $(DESTDIR)$(SHAREDIR)/rules/
	$(if $(UNIT_FILE),install -d $(DESTDIR)$(UNITDIR))
	$(if $(UNIT_FILE),sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	    $(UNIT_FILE) > $(DESTDIR)$(UNITDIR)/egoi-router.service)
	$(if $(UNIT_FILE),chmod 0644 $(DESTDIR)$(UNITDIR)/egoi-router.service)

# Only what install wrote, then the directories that are egoi-router's own if
# they are empty; shared ones ($(BINDIR), man8) stay.
uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	rmdir $(DESTDIR)$(SHAREDIR)/rules $(DESTDIR)$(SHAREDIR) $(DESTDIR)$(LIBDIR) 2>/dev/null || true

# Build output only: build/ holds every default build (plain, SANITIZE=1 in
# build/san, fuzz in build/fuzz). var/ is the default data_dir (the outbox, dead letters, the
# dev token) and is never touched.
clean:
	rm -rf build

-include $(OBJ:.o=.d) $(BUILD)/obj/main.d $(BUILD)/soak-load.d $(BUILD)/bench-micro.d $(E2EOBJ:.o=.d) $(E2ELIBOBJ:.o=.d) $(FAULTOBJ:.o=.d) \
         $(UNIT:%=$(BUILD)/tests/obj/unit/%.d) $(BUILD)/tests/obj/pg_cluster.d
-include $(wildcard $(FUZZDIR)/obj/*.d $(FUZZDIR)/obj/fuzz/*.d)
