#!/usr/bin/env bash
# The Debian package, end to end: build postgresql-15-reminder from a copy of
# this tree with dpkg-buildpackage (pg_buildext; its build runs the
# pg_regress suite against the package's files), check what it contains and
# depends on, install it, and run the demo (scripts/demo: CREATE EXTENSION, a
# watched table, reminders delivered through the log channel and a local
# webhook) on a fresh cluster that has nothing but the package's files;
# then update a 0.1.0 install to the packaged 0.2.0.
#
# How it installs (REMINDER_DEB_INSTALL):
#   private (default)  dpkg-deb -x into a private copy of the PostgreSQL
#                      installation from which this tree's reminder files are
#                      removed first: leaves the system alone, for machines
#                      where others use it at the same time;
#   dpkg               dpkg -i into the system, checked with dpkg --verify,
#                      purged at the end (files "make install" had put there
#                      are restored): what a DBA does, for throwaway
#                      machines (.ci/run).
# Either way Depends must be satisfied by what is installed.
#
# Needs root (the demo runs its cluster as user postgres), dpkg-dev,
# debhelper, postgresql-server-dev-all (scripts/setup installs them).
# Environment: REMINDER_TEST_DIR (work folder), REMINDER_TEST_PORT (the demo
# cluster's port; the webhook receiver takes the next one).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
WORK=${REMINDER_TEST_DIR:-/tmp/reminder-test}/deb
PORT=${REMINDER_TEST_PORT:-55432}
MODE=${REMINDER_DEB_INSTALL:-private}
PGVERSION=15
PKG=postgresql-$PGVERSION-reminder
VERSION=$(sed -n "s/^default_version[[:space:]]*=[[:space:]]*'\(.*\)'/\1/p" reminder.control)

tests=0
failures=0
ok() {
	tests=$((tests + 1))
	echo "ok $tests - $1"
}
not_ok() {
	tests=$((tests + 1))
	failures=$((failures + 1))
	echo "not ok $tests - $1"
}
check() {	# check DESCRIPTION COMMAND...
	local what=$1
	shift
	if "$@"; then ok "$what"; else not_ok "$what"; fi
}
is() {		# is GOT EXPECTED DESCRIPTION
	if [ "$1" = "$2" ]; then
		ok "$3"
	else
		not_ok "$3"
		echo "#   got:      '$1'"
		echo "#   expected: '$2'"
	fi
}
finish() {
	echo "1..$tests"
	[ "$failures" = 0 ] || { echo "# $failures of $tests failed"; exit 1; }
}

rm -rf "$WORK"
mkdir -p "$WORK"

# -- build, out of tree: the files git knows (committed or not, not ignored)
SRC=$WORK/reminder-$VERSION
mkdir -p "$SRC"
if [ -e .git ]; then
	git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -C "$SRC" -xf -
else
	tar --exclude=./tmp_check --exclude='*.o' --exclude='*.so' --exclude='*.bc' -cf - . | tar -C "$SRC" -xf -
fi
echo "# building $PKG in $SRC (log: $WORK/build.log)"
if (cd "$SRC" && dpkg-buildpackage -us -uc -b) >"$WORK/build.log" 2>&1; then
	ok "dpkg-buildpackage -us -uc -b builds the package, its pg_regress run included"
else
	not_ok "dpkg-buildpackage -us -uc -b builds the package"
	tail -60 "$WORK/build.log"
	finish
fi
DEB=$(ls "$WORK"/${PKG}_"$VERSION"-*_*.deb)
is "$(dpkg-deb -f "$DEB" Package)" "$PKG" "the package is called $PKG"
is "$(dpkg-deb -f "$DEB" Version | sed 's/-[^-]*$//')" "$VERSION" "its upstream version is the control file's $VERSION"

# -- contents: the library and every install and upgrade script
contents=$(dpkg-deb -c "$DEB" | awk '{print $6}' | sed 's|^\./|/|')
PKGLIB=/usr/lib/postgresql/$PGVERSION/lib
SHARE=/usr/share/postgresql/$PGVERSION/extension
for f in "$PKGLIB/reminder.so" "$SHARE/reminder.control" "$SHARE/reminder--$VERSION.sql" \
	$(cd sql && ls reminder--*.sql | grep -vx "reminder--$VERSION.sql" | sed "s|^|$SHARE/|") /usr/share/doc/$PKG/copyright; do
	check "the package has $f" grep -qx -- "$f" <<<"$contents"
done

# -- Depends, satisfied by what this machine has installed
depends=$(dpkg-deb -f "$DEB" Depends)
check "it depends on postgresql-$PGVERSION" grep -q "postgresql-$PGVERSION\b" <<<"$depends"
check "it depends on libcurl" grep -q "libcurl4" <<<"$depends"
# The versions in which NAME is installed: its own, and those of installed
# packages that provide it ("postgresql-15-jit-llvm (= 14)"), one a line.
installed_versions() {
	local name=$1
	if dpkg-query -W -f='${Status}' "$name" 2>/dev/null | grep -q "install ok installed"; then
		dpkg-query -W -f='${Version}\n' "$name"
	fi
	dpkg-query -W -f='${Status}\t${Provides}\n' | grep "^install ok installed" | cut -f2 |
		tr ',' '\n' | sed -n "s/^ *$name *(= *\([^)]*\)).*/\1/p; s/^ *$name *$/unversioned/p"
}
satisfied() {	# satisfied "pkg (>= 1) | other, ..."
	local dep alt name op ver have
	IFS=',' read -ra deps <<<"$1"
	for dep in "${deps[@]}"; do
		local found=no
		IFS='|' read -ra alts <<<"$dep"
		for alt in "${alts[@]}"; do
			read -r alt <<<"$alt"	# trim
			name=${alt%% *}
			name=${name%%:*}
			while read -r have; do
				[ -n "$have" ] || continue
				if [[ $alt =~ \(([<>=]+)\ *([^\)]+)\) ]]; then
					op=${BASH_REMATCH[1]}
					ver=${BASH_REMATCH[2]}
					[ "$have" != unversioned ] && dpkg --compare-versions "$have" "$op" "$ver" || continue
				fi
				found=yes
			done < <(installed_versions "$name")
			[ $found = yes ] && break
		done
		[ $found = yes ] || { echo "# unsatisfied: $dep"; return 1; }
	done
}
check "its Depends ($depends) are installed" satisfied "$depends"

# -- install
. scripts/cluster.sh
# dpkg mode: the files of "make install" at the package's paths are kept
# aside and put back once the package is purged, so the system ends as it was.
uninstall() {
	dpkg --purge "$PKG" >/dev/null 2>&1 || true
	[ -s "$WORK/before.tar" ] && tar -C / -xf "$WORK/before.tar"
	true
}
if [ "$MODE" = dpkg ]; then
	(cd / && for f in $contents; do [ -f ".$f" ] && echo ".$f"; done) | tar -C / -cf "$WORK/before.tar" -T -
	if dpkg -i "$DEB" >"$WORK/dpkg.log" 2>&1; then
		ok "dpkg -i installs it"
	else
		not_ok "dpkg -i installs it"
		cat "$WORK/dpkg.log"
		uninstall
		finish
	fi
	trap uninstall EXIT
	check "dpkg --verify: the installed files are the package's" dpkg --verify "$PKG"
	is "$(dpkg -S "$PKGLIB/reminder.so" | cut -d: -f1)" "$PKG" "reminder.so belongs to $PKG"
	PGBIN=/usr/lib/postgresql/$PGVERSION/bin
else
	# a copy of the installation without any reminder, then the package
	INST=$WORK/install
	mkdir -p "$INST/usr/lib/postgresql" "$INST/usr/share/postgresql"
	cp -a "/usr/lib/postgresql/$PGVERSION" "$INST/usr/lib/postgresql/"
	cp -a "/usr/share/postgresql/$PGVERSION" "$INST/usr/share/postgresql/"
	rm -rf "$INST$PKGLIB/reminder.so" "$INST$PKGLIB/bitcode/reminder" "$INST$PKGLIB/bitcode/reminder.index.bc" \
		"$INST$SHARE"/reminder.control "$INST$SHARE"/reminder--*.sql
	dpkg-deb -x "$DEB" "$INST"
	chmod -R a+rX "$INST"
	is "$(cmp -s "$INST$PKGLIB/reminder.so" <(dpkg-deb --fsys-tarfile "$DEB" | tar -xOf - ".$PKGLIB/reminder.so") && echo same)" \
		same "dpkg-deb -x puts the package's reminder.so in a private copy of PostgreSQL $PGVERSION"
	PGBIN=$INST/usr/lib/postgresql/$PGVERSION/bin
fi
export PGBIN

# -- the demo, on a fresh cluster with the package's files
DEMO=$WORK/demo
export REMINDER_DEMO_DIR=$DEMO REMINDER_DEMO_PORT=$PORT
trap 'cluster_stop "$DEMO"; [ "$MODE" = dpkg ] && uninstall; true' EXIT
if scripts/demo --no-setup --keep >"$WORK/demo.log" 2>&1; then
	ok "scripts/demo runs on the packaged extension"
else
	not_ok "scripts/demo runs on the packaged extension"
	tail -40 "$WORK/demo.log"
	finish
fi
q() { cluster_psql "$DEMO" "$PORT" -d postgres -Atc "$1"; }
is "$(q "SELECT extversion FROM pg_extension WHERE extname = 'reminder'")" "$VERSION" "CREATE EXTENSION reminder made version $VERSION"
is "$(q "SELECT probin FROM pg_proc WHERE oid = 'reminder.worker_status'::regproc")" '$libdir/reminder' \
	"its functions live in \$libdir/reminder"
is "$(q "SELECT pg_read_file('postmaster.opts') LIKE '%' || '$PGBIN' || '%'")" t "the demo's server is the installation under test"
is "$(q "SELECT state FROM reminder.worker_status() WHERE database = 'postgres'")" running "the worker runs"
is "$(q "SELECT string_agg(channel || ':' || status, ' ' ORDER BY id) FROM reminder.message WHERE due_at <= now()")" \
	"log:sent hook:sent log:sent hook:sent" "the demo's two due meetings were delivered to both their recipients"
is "$(q "SELECT count(*) FROM reminder.log")" 2 "the log channel wrote two notes"
is "$(wc -l <"$DEMO/webhook.jsonl")" 2 "the local webhook received two requests"
check "the demo printed the outbox and the webhook requests" \
	grep -q "== delivered to the local webhook" "$WORK/demo.log"

# -- updating an install of the previous version, with the packaged scripts
q "CREATE DATABASE upgrade" >/dev/null
cluster_psql "$DEMO" "$PORT" -d upgrade -q -c "SET client_min_messages = warning" \
	-c "CREATE EXTENSION reminder VERSION '0.1.0'" -c "ALTER EXTENSION reminder UPDATE" || true
is "$(cluster_psql "$DEMO" "$PORT" -d upgrade -Atc "SELECT extversion FROM pg_extension WHERE extname = 'reminder'")" \
	"$VERSION" "ALTER EXTENSION reminder UPDATE goes from 0.1.0 to $VERSION"

finish
