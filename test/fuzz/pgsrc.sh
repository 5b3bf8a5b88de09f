#!/bin/sh
# pgsrc.sh DIR: PostgreSQL 15's source into DIR, from Debian's source
# package (apt-get source, with a deb-src list of its own so the system's
# apt configuration is left alone).  The harnesses compile the backend
# files they exercise from it; the installed server headers are used.
set -eu
dir=$1
[ -f "$dir/src/backend/utils/adt/jsonb.c" ] && exit 0
work=$(dirname "$dir")/pgsrc-download
mkdir -p "$work/lists/partial"
cat > "$work/sources.list" <<LIST
deb-src http://deb.debian.org/debian bookworm main
deb-src http://deb.debian.org/debian bookworm-updates main
deb-src http://deb.debian.org/debian-security bookworm-security main
LIST
APT="-o Dir::Etc::SourceList=$work/sources.list -o Dir::Etc::SourceParts=/dev/null -o Dir::State::Lists=$work/lists -o APT::Sandbox::User=root"
apt-get $APT update -qq
cd "$work"
# the newest version whose files the mirror still has
for v in $(apt-cache $APT showsrc postgresql-15 | sed -n 's/^Version: //p' | sort -rV); do
	if apt-get $APT source --download-only -qq "postgresql-15=$v" 2>/dev/null; then
		tar=$(ls postgresql-15_"${v%%-*}".orig.tar.* | head -1)
		mkdir -p "$dir"
		tar -xf "$tar" -C "$dir" --strip-components=1
		echo "pgsrc.sh: PostgreSQL ${v%%-*} source in $dir"
		exit 0
	fi
done
echo "pgsrc.sh: could not download postgresql-15's source package" >&2
exit 1
