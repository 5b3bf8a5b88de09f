# reminder: reminders and notifications delivered from inside PostgreSQL.
#
# Build and install:   make && make install
# Every test:          scripts/test-all   (sets up a fresh machine, see README)

EXTENSION   = reminder
EXTVERSION  = $(shell sed -n "s/^default_version[[:space:]]*=[[:space:]]*'\(.*\)'/\1/p" $(EXTENSION).control)

MODULE_big  = reminder
# src/ is grouped by family (src/README); headers are included by their
# path under src/ ("catalog/reminder_catalog.h").
OBJS        = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c src/*/*.c)))
PG_CPPFLAGS = -I$(srcdir)/src $(shell curl-config --cflags) -DREMINDER_VERSION='"$(EXTVERSION)"'
SHLIB_LINK  = $(shell curl-config --libs)
PG_CFLAGS   = -MMD -MP

# The install script of the current version is assembled from sql/src/*.sql,
# one part per responsibility, in file-name order.  Install scripts of
# released versions are kept as they shipped (sql/reminder--0.1.0.sql), and
# upgrade scripts are written by hand.
DATA_built  = sql/$(EXTENSION)--$(EXTVERSION).sql
DATA        = $(filter-out $(DATA_built),$(wildcard sql/$(EXTENSION)--*.sql))
EXTRA_CLEAN = sql/$(EXTENSION)--$(EXTVERSION).sql test/results test/regression.diffs test/regression.out \
              $(OBJS:.o=.d)

# pg_regress: inputs in test/sql, expected output in the top-level expected/
# (test/expected is a symlink to it; PostgreSQL 15's pg_regress has no
# --expecteddir).
REGRESS      = $(patsubst test/sql/%.sql,%,$(sort $(wildcard test/sql/*.sql)))
REGRESS_OPTS = --inputdir=test --outputdir=test --load-extension=$(EXTENSION)

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS tracks no header dependencies: the compiler writes them next to
# each object (src/family/file.d), and a header removed since is no error.
# In CFLAGS (PG_CFLAGS), not CPPFLAGS: the bitcode rule (with_llvm) passes
# CPPFLAGS to clang too, which would rewrite each .d for the .bc target.
-include $(OBJS:.o=.d)

sql/$(EXTENSION)--$(EXTVERSION).sql: $(sort $(wildcard sql/src/*.sql))
	cat $^ > $@

# ----------------------------------------------------------------------
# Test entry points.  Each needs only an installed extension (make install)
# and what it names; none installs packages.  scripts/test-all calls them
# against throwaway clusters.
#
#   make installcheck        pg_regress (test/sql -> expected/) against the
#                            running server given by PGHOST, PGPORT, PGUSER
#   make pgtap               pg_prove over test/pgtap in a fresh database
#                            $(PGTAP_DB) of that server (needs pgTAP installed)
#   make prove_installcheck  the TAP tests (test/t/*.pl; PROVE_TESTS picks
#                            files, PROVE_FLAGS adds options): each starts its
#                            own clusters with the PostgreSQL of PG_CONFIG;
#                            logs under $(TAP_TESTDIR)/tmp_check.  Run as a
#                            user other than root.
# ----------------------------------------------------------------------

PGTAP_DB    ?= reminder_pgtap
PGTAP_TESTS ?= test/pgtap
TAP_TESTDIR ?= $(CURDIR)

# The PGXN distribution: the committed tree (META.json at its top) as
# $(EXTENSION)-$(EXTVERSION).zip in DIST_DIR.
DIST_DIR    ?= .

.PHONY: test demo pgtap prove_installcheck dist
dist:
	git archive --format=zip --prefix=$(EXTENSION)-$(EXTVERSION)/ \
		-o '$(DIST_DIR)/$(EXTENSION)-$(EXTVERSION).zip' HEAD

test:
	scripts/test-all
demo:
	scripts/demo

pgtap:
	'$(bindir)/psql' -X -q -v ON_ERROR_STOP=1 -d postgres \
		-c 'DROP DATABASE IF EXISTS $(PGTAP_DB)' -c 'CREATE DATABASE $(PGTAP_DB)'
	PGOPTIONS='-c client_min_messages=warning' '$(bindir)/psql' -X -q -v ON_ERROR_STOP=1 -d $(PGTAP_DB) \
		-c 'CREATE EXTENSION pgtap' -c 'CREATE EXTENSION $(EXTENSION)'
	pg_prove -d $(PGTAP_DB) --ext .sql -r $(PGTAP_TESTS)

prove_installcheck:
	rm -rf '$(TAP_TESTDIR)/tmp_check'
	$(MKDIR_P) '$(TAP_TESTDIR)/tmp_check'
	TESTDIR='$(TAP_TESTDIR)' PATH='$(bindir)':"$$PATH" REMINDER_SRC='$(CURDIR)' \
	PG_REGRESS='$(top_builddir)/src/test/regress/pg_regress' \
	$(PROVE) -I '$(top_builddir)/src/test/perl' -I test/t $(PROVE_FLAGS) \
		$(or $(PROVE_TESTS),$(sort $(wildcard test/t/*.pl)))
