# mod_ocspstaple: build with apxs, test with Apache::Test, demo on loopback.
#   make            build .libs/mod_ocspstaple.so (warnings are errors)
#   make install    install the module (apxs -i) and, on Debian, the a2enmod files
#   make test       the whole test suite (installs missing Debian packages)
#   make demo       throw-away PKI + responder + private Apache, shows a staple
#   make bench      side by side with no stapling, mod_ssl, mod_md and nginx,
#                   1,000 and 10,000 certificates (under 20 min, 2 cores):
#                   prints a table, writes bench/RESULTS.md from a clean tree;
#                   QUICK=1: the same steps in about 3 minutes, meaningless
#   make test-asan  the whole suite against an ASAN+UBSAN build (build/asan),
#                   then `make valgrind`; fails on any sanitizer report
#   make valgrind   the unit tests under valgrind (errors and leaks fail)
#   make deb        the Debian package libapache2-mod-ocspstaple in build/deb/,
#                   checked with lintian (installs the packaging tools)
#   make fuzz       libFuzzer harnesses (clang), FUZZ_SECONDS (60) each
#   make clean

APXS    ?= $(shell command -v apxs 2>/dev/null || echo /usr/bin/apxs)
CC      ?= cc
WARN     = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wformat-security -Werror
# Extra flags for sanitizer or debug builds: make EXTRA_CFLAGS=-fsanitize=address
EXTRA_CFLAGS ?=
EXTRA_LDFLAGS ?=

MODULE_SRC = mod_ocspstaple.c ocspstaple_config.c ocspstaple_coexist.c \
             ocspstaple_registry.c ocspstaple_shared.c ocspstaple_local.c \
             ocspstaple_fleet.c ocspstaple_schedule.c ocspstaple_alerts.c \
             ocspstaple_update.c ocspstaple_startup.c ocspstaple_helper.c \
             ocspstaple_refresh.c \
             ocspstaple_status.c ocspstaple_metrics.c ocsp_store.c \
             ocsp_fetch.c ocsp_http.c refresh_policy.c stapling_record.c \
             stapling_cache.c
HEADERS    = $(wildcard include/*.h)
MODULE     = .libs/mod_ocspstaple.so
LIBS       = -lssl -lcrypto -lcurl

APR_CFLAGS = $(shell apr-1-config --cflags --cppflags --includes 2>/dev/null)
APR_LIBS   = $(shell apr-1-config --link-ld --libs 2>/dev/null)

UNIT_BIN   = t/unit/test_ocsp_fetch
UNIT_BIN2  = t/unit/test_policy_record
UNIT_BIN3  = t/unit/test_ocsp_store
UNIT_BIN4  = t/unit/test_schedule
HTTPD_INCLUDES = -I$(shell $(APXS) -q INCLUDEDIR 2>/dev/null)
# The fuzz harnesses (fuzz/) as plain programs that replay inputs once:
# t/03-fuzz-replay.t runs the seed corpus and the regression inputs with them.
FUZZ_TARGETS = fuzz_verify fuzz_record fuzz_cert
FUZZ_LIB_SRC = ocsp_fetch.c ocsp_http.c stapling_record.c refresh_policy.c
FUZZ_COMMON  = fuzz/fuzz_common.c fuzz/fuzz_common.h
REPLAY_BINS  = $(FUZZ_TARGETS:%=t/unit/replay_%)

.PHONY: all install test demo clean deps unit bench bench-deps test-asan asan-build asan-deps \
        valgrind fuzz fuzz-build fuzz-deps deb deb-deps

all: $(MODULE)

# apxs/libtool are verbose: their output is shown only when the build fails
# (warnings are errors, so a warning fails it too).
$(MODULE): $(MODULE_SRC) $(HEADERS) Makefile
	@echo "  APXS  mod_ocspstaple.la"
	@$(APXS) -c -n ocspstaple -Iinclude \
	    $(foreach f,$(WARN) $(EXTRA_CFLAGS),-Wc,$(f)) \
	    $(foreach f,$(EXTRA_LDFLAGS),-Wl,$(f)) \
	    -o mod_ocspstaple.la $(MODULE_SRC) $(LIBS) >build.log 2>&1 \
	    || { cat build.log; exit 1; }

# The fetch/verify layer has no httpd dependency: its unit tests link it alone.
$(UNIT_BIN): t/unit/test_ocsp_fetch.c ocsp_fetch.c ocsp_http.c include/ocsp_fetch.h include/ocsp_http.h Makefile
	$(CC) $(WARN) -g -Iinclude $(APR_CFLAGS) $(EXTRA_CFLAGS) -o $@ \
	    t/unit/test_ocsp_fetch.c ocsp_fetch.c ocsp_http.c $(EXTRA_LDFLAGS) $(APR_LIBS) $(LIBS)

$(UNIT_BIN2): t/unit/test_policy_record.c refresh_policy.c stapling_record.c \
              include/refresh_policy.h include/stapling_record.h Makefile
	$(CC) $(WARN) -g -Iinclude $(APR_CFLAGS) $(EXTRA_CFLAGS) -o $@ \
	    t/unit/test_policy_record.c refresh_policy.c stapling_record.c \
	    $(EXTRA_LDFLAGS) $(APR_LIBS)

# The on-disk store (APR and POSIX only): planted links, FIFOs, leftovers.
$(UNIT_BIN3): t/unit/test_ocsp_store.c ocsp_store.c include/ocsp_store.h Makefile
	$(CC) $(WARN) -g -Iinclude $(APR_CFLAGS) $(EXTRA_CFLAGS) -o $@ \
	    t/unit/test_ocsp_store.c ocsp_store.c $(EXTRA_LDFLAGS) $(APR_LIBS)

# The schedule needs httpd's headers for its entry type, none of its code.
$(UNIT_BIN4): t/unit/test_schedule.c ocspstaple_schedule.c include/ocspstaple_schedule.h \
              include/ocspstaple_registry.h Makefile
	$(CC) $(WARN) -g -Iinclude $(HTTPD_INCLUDES) $(APR_CFLAGS) $(EXTRA_CFLAGS) -o $@ \
	    t/unit/test_schedule.c ocspstaple_schedule.c $(EXTRA_LDFLAGS) $(APR_LIBS)

t/unit/replay_%: fuzz/%.c fuzz/replay.c $(FUZZ_COMMON) $(FUZZ_LIB_SRC) $(HEADERS) Makefile
	$(CC) $(WARN) -g -Iinclude -Ifuzz $(APR_CFLAGS) $(EXTRA_CFLAGS) \
	    -DFUZZ_DIR='"$(CURDIR)/fuzz"' -o $@ $< fuzz/replay.c fuzz/fuzz_common.c \
	    $(FUZZ_LIB_SRC) $(EXTRA_LDFLAGS) $(APR_LIBS) $(LIBS)

unit: $(UNIT_BIN) $(UNIT_BIN2) $(UNIT_BIN3) $(UNIT_BIN4) $(REPLAY_BINS)

deps:
	@./scripts/deps.sh

install: $(MODULE)
	$(APXS) -i -n ocspstaple mod_ocspstaple.la
	@if [ -d /etc/apache2/mods-available ]; then \
	    install -m 644 conf/ocspstaple.load conf/ocspstaple.conf /etc/apache2/mods-available/ && \
	    echo "Installed conf/ocspstaple.{load,conf}: enable with 'a2enmod ocspstaple'"; \
	fi

test: deps
	$(MAKE) all unit
	./t/run-tests.sh

demo: deps
	$(MAKE) all
	./scripts/demo.sh

# ---- sanitizers ------------------------------------------------------------
# An ASAN+UBSAN build with clang in build/asan/, so the normal module and unit
# tests are never touched: `make test` after `make test-asan` tests the normal
# build. clang, not gcc: with gcc 12 the UBSan runtime of a module that also
# uses ASAN ignores log_path and reports to httpd's error log only, where
# nothing would notice; clang has one runtime that honours both.
#   build/asan/mod_ocspstaple.so   compiled and linked directly (not apxs:
#                                  its libtool links with gcc, whatever CC)
#   build/asan/t/unit/*            the unit tests and fuzz replays, made by
#                                  this Makefile over symlinks to the sources
# The suite runs apache2 through scripts/sanitize-httpd.sh, which preloads the
# runtime into the uninstrumented apache2 (leak detection off in httpd: it
# frees its pools by exiting; on in the unit tests). Every report goes to
# t/logs/sanitizer.PID (ASAN and UBSAN alike), and any such file fails it.
ASAN_CC      ?= clang
ASAN_DIR     = build/asan
ASAN_MODULE  = $(ASAN_DIR)/mod_ocspstaple.so
ASAN_RT      = $(shell $(ASAN_CC) -print-file-name=libclang_rt.asan-$(shell uname -m).so 2>/dev/null)
ASAN_CFLAGS  = -fsanitize=address,undefined -fno-sanitize-recover=undefined \
               -fno-omit-frame-pointer -g -O1
ASAN_LDFLAGS = -fsanitize=address,undefined
# httpd's command_rec tables end with { NULL }: clang's -Wextra objects.
ASAN_WARN    = $(WARN) -Wno-missing-field-initializers
ASAN_LINKS   = Makefile include fuzz $(MODULE_SRC) \
               t/unit/test_ocsp_fetch.c t/unit/test_policy_record.c \
               t/unit/test_ocsp_store.c t/unit/test_schedule.c
SAN_LOGS     = $(CURDIR)/t/logs

$(ASAN_MODULE): $(MODULE_SRC) $(HEADERS) Makefile
	@mkdir -p $(ASAN_DIR)
	@echo "  CC    $@ (ASAN+UBSAN)"
	@$(ASAN_CC) -shared -fPIC $(ASAN_WARN) $(ASAN_CFLAGS) -Iinclude \
	    -I$(shell $(APXS) -q INCLUDEDIR) $(APR_CFLAGS) -o $@ $(MODULE_SRC) \
	    $(ASAN_LDFLAGS) $(LIBS)

# Base packages plus clang (and its ASAN runtime) and valgrind. A prerequisite,
# not a recipe line: ASAN_RT asks clang, when the recipe is expanded.
asan-deps:
	@./scripts/deps.sh clang libclang-rt-dev valgrind

asan-build: $(ASAN_MODULE)
	@mkdir -p $(ASAN_DIR)/t/unit
	@for f in $(ASAN_LINKS); do ln -sfn "$(CURDIR)/$$f" "$(ASAN_DIR)/$$f"; done
	@$(MAKE) --no-print-directory -C $(ASAN_DIR) unit CC=$(ASAN_CC) \
	    WARN='$(ASAN_WARN)' EXTRA_CFLAGS='$(ASAN_CFLAGS)' EXTRA_LDFLAGS='$(ASAN_LDFLAGS)'

test-asan: asan-deps
	$(MAKE) asan-build
	@rm -f t/logs/sanitizer.*; rc=0; \
	OCSP_SANITIZE=1 OCSP_MODULE=$(CURDIR)/$(ASAN_MODULE) \
	OCSP_SANITIZE_PRELOAD=$(ASAN_RT) \
	OCSP_UNIT_DIR=$(CURDIR)/$(ASAN_DIR)/t/unit \
	OCSP_HTTPD=$(CURDIR)/scripts/sanitize-httpd.sh \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:log_path=$(SAN_LOGS)/sanitizer \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$(SAN_LOGS)/sanitizer \
	    ./t/run-tests.sh || rc=$$?; \
	reports=$$(ls $(SAN_LOGS)/sanitizer.* 2>/dev/null || true); \
	for f in $$reports; do echo "==== $$f"; cat "$$f"; done; \
	if [ -n "$$reports" ]; then \
	    echo "test-asan: FAIL: sanitizer reports:" $$reports; exit 1; fi; \
	if [ $$rc -ne 0 ]; then echo "test-asan: FAIL: the suite failed"; exit $$rc; fi; \
	echo "test-asan: the suite passed, no sanitizer report"
	$(MAKE) valgrind

# The unit tests (fetch layer, policy and records, fuzz replays) under
# valgrind, with the normal build: any error or leak fails the test.
VALGRIND = valgrind -q --leak-check=full --show-leak-kinds=definite,indirect,possible \
           --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=1 \
           --track-fds=no --num-callers=30
valgrind:
	@./scripts/deps.sh valgrind
	$(MAKE) all unit
	OCSP_UNIT_WRAPPER='$(VALGRIND)' ./t/run-tests.sh t/00-unit.t t/02-unit-policy.t t/03-fuzz-replay.t \
	    t/04-unit-store.t t/06-unit-schedule.t

# ---- Debian package ---------------------------------------------------------
# dpkg-buildpackage (debhelper, dh_apache2) in a copy of the checkout under
# build/deb/, where the .deb, .changes and .buildinfo land too
# (scripts/build-deb.sh); lintian errors fail it. Rebuilt only when a file
# that goes into the package changed: t/root/30-package.t runs `make deb`.
DEB_DIR     = build/deb
DEB_VERSION = $(shell sed -n '1s/^[^(]*(\([^)]*\)).*/\1/p' debian/changelog)
DEB_ARCH    = $(shell dpkg --print-architecture 2>/dev/null)
DEB         = $(DEB_DIR)/libapache2-mod-ocspstaple_$(DEB_VERSION)_$(DEB_ARCH).deb
DEB_INPUTS  = $(MODULE_SRC) $(HEADERS) Makefile README.md LICENSE \
              conf/ocspstaple.load conf/ocspstaple.conf conf/example-vhost.conf \
              conf/ocspstaple-alerts.yml scripts/build-deb.sh \
              $(wildcard debian/* debian/source/*)

deb-deps:
	@./scripts/deps.sh --deb

deb: deb-deps
	@$(MAKE) --no-print-directory $(DEB)

$(DEB): $(DEB_INPUTS)
	./scripts/build-deb.sh $(DEB_DIR)

# ---- fuzzing ----------------------------------------------------------------
# One libFuzzer binary per harness in build/fuzz/ (clang; only the httpd-free
# sources). `make fuzz` replays fuzz/regressions/<target>/, then fuzzes each
# target for FUZZ_SECONDS from fuzz/corpus/<target>/ (fuzz/run.sh); a crash,
# leak, timeout or harness assertion fails it and leaves the input in
# build/fuzz/artifacts/<target>/.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_BUILD   = build/fuzz
FUZZ_CFLAGS  = -g -O1 -fno-omit-frame-pointer \
               -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_BINS    = $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/%)

$(FUZZ_BUILD)/%: fuzz/%.c $(FUZZ_COMMON) $(FUZZ_LIB_SRC) $(HEADERS) Makefile
	@mkdir -p $(FUZZ_BUILD)
	$(FUZZ_CC) $(WARN) $(FUZZ_CFLAGS) -Iinclude -Ifuzz $(APR_CFLAGS) \
	    -DFUZZ_DIR='"$(CURDIR)/fuzz"' -o $@ $< fuzz/fuzz_common.c \
	    $(FUZZ_LIB_SRC) $(APR_LIBS) $(LIBS)

fuzz-deps:
	@./scripts/deps.sh clang libclang-rt-dev

fuzz-build: fuzz-deps
	@$(MAKE) --no-print-directory $(FUZZ_BINS)

fuzz: fuzz-build
	./fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# The benchmark's handshake client (bench/hsclient.c): plain OpenSSL, no httpd.
BENCH_CLIENT = bench/hsclient
$(BENCH_CLIENT): bench/hsclient.c Makefile
	$(CC) $(WARN) -O2 -pthread $(EXTRA_CFLAGS) -o $@ bench/hsclient.c \
	    $(EXTRA_LDFLAGS) -lssl -lcrypto

# The benchmark's loopback OCSP responder (bench/fastocsp.c): responses
# signed once and served from memory, so that 10,000 certificates measure
# the server, not the responder.
BENCH_RESPONDER = bench/fastocsp
$(BENCH_RESPONDER): bench/fastocsp.c Makefile
	$(CC) $(WARN) -O2 $(EXTRA_CFLAGS) -o $@ bench/fastocsp.c \
	    $(EXTRA_LDFLAGS) -lssl -lcrypto

# Leaves for the scale scenario (bench/mkleaves.c): 10,000 in seconds.
BENCH_LEAVES = bench/mkleaves
$(BENCH_LEAVES): bench/mkleaves.c Makefile
	$(CC) $(WARN) -O2 $(EXTRA_CFLAGS) -o $@ bench/mkleaves.c \
	    $(EXTRA_LDFLAGS) -lssl -lcrypto

# The peers the bench compares with, beside mod_ssl: nginx (Debian's
# `nginx`: in bookworm nginx-light only adds the echo module to it) and
# mod_md, which ships with apache2. BENCH_ARGS=--quick (or QUICK=1) for a
# short run while working on the bench itself.
BENCH_PEERS = nginx
ifeq ($(QUICK),1)
BENCH_ARGS += --quick
endif

bench-deps:
	@./scripts/deps.sh $(BENCH_PEERS)

bench: bench-deps
	$(MAKE) all $(BENCH_CLIENT) $(BENCH_RESPONDER) $(BENCH_LEAVES)
	./bench/bench.pl $(BENCH_ARGS)

clean:
	rm -rf .libs *.la *.lo *.slo *.o build.log $(UNIT_BIN) $(UNIT_BIN2) $(UNIT_BIN3) $(UNIT_BIN4) t/unit/*.o
	rm -rf build $(REPLAY_BINS) bench/hsclient bench/fastocsp bench/mkleaves bench/out
	rm -rf t/pki t/logs t/conf/httpd.conf t/conf/extra.conf t/conf/apache_test_config.pm \
	    t/conf/modperl_inc.pl t/conf/modperl_startup.pl t/htdocs/index.html t/TEST \
	    t/conf/modules.conf
