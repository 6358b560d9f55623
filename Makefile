# crm_analytics: PGXS build.
#
#   make && make install && make installcheck
#
# The C files and the SQL file of each capability live side by side in src/
# (src/funnel_*.c + src/funnel.sql, ...). The install script for the current
# version is built by concatenating src/core.sql, the feature files in name
# order, src/dashboard.sql (it reads the others) and last the reports built on
# the dashboard's source registry, src/dashboard_*.sql, in name order.  Scripts of released
# versions and upgrade scripts crm_analytics--A--B.sql are committed in sql/.

EXTENSION   = crm_analytics
EXTVERSION  = $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" $(EXTENSION).control)

MODULE_big  = crm_analytics
OBJS        = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))

SQL_FIRST   = src/core.sql
SQL_LAST    = src/dashboard.sql
SQL_REPORTS = $(sort $(wildcard src/dashboard_*.sql))
SQL_SOURCES = $(SQL_FIRST) \
              $(filter-out $(SQL_FIRST) $(SQL_LAST) $(SQL_REPORTS),$(sort $(wildcard src/*.sql))) \
              $(wildcard $(SQL_LAST)) $(SQL_REPORTS)

DATA_built  = sql/$(EXTENSION)--$(EXTVERSION).sql
DATA        = $(filter-out $(DATA_built),$(wildcard sql/$(EXTENSION)--*.sql))

# pg_regress: sql/<name>.sql against expected/<name>.out (install scripts excluded)
REGRESS      = $(sort $(patsubst sql/%.sql,%,$(filter-out sql/$(EXTENSION)--%,$(wildcard sql/*.sql))))
REGRESS_OPTS = --inputdir=. --load-extension=$(EXTENSION)

PG_CPPFLAGS = -isystem $(shell $(PG_CONFIG) --includedir-server)
PG_CFLAGS   = -std=gnu99 -Wall -Wextra $(CRM_EXTRA_CFLAGS)
SHLIB_LINK  = -lm

EXTRA_CLEAN = sql/$(EXTENSION)--$(EXTVERSION).sql $(EXTENSION)-$(EXTVERSION).zip

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

sql/$(EXTENSION)--$(EXTVERSION).sql: $(SQL_SOURCES) $(EXTENSION).control
	@{ echo "-- crm_analytics $(EXTVERSION): generated from $(strip $(SQL_SOURCES)) by make; do not edit"; \
	   printf '%s\n' '\echo Use "CREATE EXTENSION $(EXTENSION)" to load this file. \quit'; \
	   for f in $(SQL_SOURCES); do echo; echo "-- ==== $$f ===="; cat $$f; done; } > $@

.PHONY: demo test bench dist prove
# the PGXN archive of the committed tree (HEAD); META.json must carry the control's version
DIST_ZIP ?= $(EXTENSION)-$(EXTVERSION).zip
dist:
	@v=$$(perl -MJSON::PP -e 'local $$/; print decode_json(<STDIN>)->{version}' < META.json); \
	 [ "$$v" = "$(EXTVERSION)" ] || { echo "META.json version $$v differs from default_version $(EXTVERSION)" >&2; exit 1; }
	git archive --format zip --prefix $(EXTENSION)-$(EXTVERSION)/ -o $(DIST_ZIP) HEAD
	@echo "$(DIST_ZIP)"

# pgTAP suites (test/*.sql) by pg_prove against the server that PGHOST/PGPORT/PGUSER name, in a
# scratch database PROVE_DB (dropped and created again) holding pgtap, crm_analytics (installed
# there already: make install) and the demo data scripts/test loads; sessions in UTC as there
# (crm.load_demo's data depends on the session time zone).
PROVE_DB    ?= crm_prove
PROVE_TESTS ?= $(sort $(wildcard test/*.sql))
prove: export PGTZ = UTC
prove:
	psql -X -q -v ON_ERROR_STOP=1 -d postgres -c 'DROP DATABASE IF EXISTS $(PROVE_DB)' -c 'CREATE DATABASE $(PROVE_DB)'
	psql -X -q -v ON_ERROR_STOP=1 -d $(PROVE_DB) -c 'CREATE EXTENSION pgtap' -c 'CREATE EXTENSION crm_analytics' \
	     -c "SELECT crm.load_demo(2000, 42, '2025-12-31')"
	pg_prove -d $(PROVE_DB) $(PROVE_TESTS)

demo:
	bash scripts/demo
test:
	bash scripts/test
