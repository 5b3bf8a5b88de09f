# reminder: reminders and notifications delivered from inside PostgreSQL.
#
# Build and install:   make && make install
# Every test:          scripts/test-all   (sets up a fresh machine, see README)

EXTENSION   = reminder
EXTVERSION  = $(shell sed -n "s/^default_version[[:space:]]*=[[:space:]]*'\(.*\)'/\1/p" $(EXTENSION).control)

MODULE_big  = reminder
OBJS        = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))
PG_CPPFLAGS = -I$(srcdir)/src $(shell curl-config --cflags) -DREMINDER_VERSION='"$(EXTVERSION)"'
SHLIB_LINK  = $(shell curl-config --libs)

# The install script of the current version is assembled from sql/src/*.sql,
# one part per responsibility, in file-name order.  Install scripts of
# released versions are kept as they shipped (sql/reminder--0.1.0.sql), and
# upgrade scripts are written by hand.
DATA_built  = sql/$(EXTENSION)--$(EXTVERSION).sql
DATA        = $(filter-out $(DATA_built),$(wildcard sql/$(EXTENSION)--*.sql))
EXTRA_CLEAN = sql/$(EXTENSION)--$(EXTVERSION).sql test/results test/regression.diffs test/regression.out

# pg_regress: inputs in test/sql, expected output in the top-level expected/
# (test/expected is a symlink to it; PostgreSQL 15's pg_regress has no
# --expecteddir).
REGRESS      = $(patsubst test/sql/%.sql,%,$(sort $(wildcard test/sql/*.sql)))
REGRESS_OPTS = --inputdir=test --outputdir=test --load-extension=$(EXTENSION)

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS tracks no header dependencies; a changed struct must rebuild all.
$(OBJS): $(wildcard src/*.h)

sql/$(EXTENSION)--$(EXTVERSION).sql: $(sort $(wildcard sql/src/*.sql))
	cat $^ > $@

.PHONY: test demo
test:
	scripts/test-all
demo:
	scripts/demo
