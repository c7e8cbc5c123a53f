# mod_ocspstaple: build with apxs, test with Apache::Test, demo on loopback.
#   make            build .libs/mod_ocspstaple.so (warnings are errors)
#   make install    install the module (apxs -i) and, on Debian, the a2enmod files
#   make test       the whole test suite (installs missing Debian packages)
#   make demo       throw-away PKI + responder + private Apache, shows a staple
#   make clean

APXS    ?= $(shell command -v apxs 2>/dev/null || echo /usr/bin/apxs)
CC      ?= cc
WARN     = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wformat-security -Werror
# Extra flags for sanitizer or debug builds: make EXTRA_CFLAGS=-fsanitize=address
EXTRA_CFLAGS ?=
EXTRA_LDFLAGS ?=

MODULE_SRC = mod_ocspstaple.c ocspstaple_config.c ocspstaple_registry.c \
             ocspstaple_update.c ocspstaple_refresh.c ocspstaple_status.c \
             ocspstaple_coexist.c ocsp_store.c \
             ocsp_fetch.c ocsp_http.c refresh_policy.c stapling_record.c \
             stapling_cache.c
HEADERS    = $(wildcard include/*.h)
MODULE     = .libs/mod_ocspstaple.so
LIBS       = -lssl -lcrypto -lcurl

APR_CFLAGS = $(shell apr-1-config --cflags --cppflags --includes 2>/dev/null)
APR_LIBS   = $(shell apr-1-config --link-ld --libs 2>/dev/null)

UNIT_BIN   = t/unit/test_ocsp_fetch
UNIT_BIN2  = t/unit/test_policy_record

.PHONY: all install test demo clean deps unit

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

unit: $(UNIT_BIN) $(UNIT_BIN2)

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

clean:
	rm -rf .libs *.la *.lo *.slo *.o build.log $(UNIT_BIN) $(UNIT_BIN2) t/unit/*.o
	rm -rf t/pki t/logs t/conf/httpd.conf t/conf/extra.conf t/conf/apache_test_config.pm \
	    t/conf/modperl_inc.pl t/conf/modperl_startup.pl t/htdocs/index.html t/TEST \
	    t/conf/modules.conf
