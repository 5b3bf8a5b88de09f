# Throwaway PostgreSQL clusters for tests and the demo; sourced, not run.
#
#   private_install DIR      copy of the PostgreSQL installation with this
#                            tree's build installed into it; sets PGBIN
#   cluster_start DIR PORT [postgresql.conf lines...]
#   cluster_stop DIR
#   cluster_psql DIR PORT [psql args...]
#
# Clusters listen on 127.0.0.1 and a Unix socket inside DIR.  PostgreSQL
# refuses to run as root, so as root the server runs as user postgres.

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}

if [ "$(id -u)" = 0 ]; then
	AS_PG=(runuser -u postgres --)
else
	AS_PG=()
fi

# Tests run against a private copy of the installation, so a concurrent
# "make install" from another checkout cannot swap the extension under them.
# PostgreSQL finds its share and lib directories relative to its binaries,
# as with "make check".
private_install() {
	local dir=$1 pg_config=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
	local bindir sharedir
	bindir=$("$pg_config" --bindir)
	sharedir=$("$pg_config" --sharedir)
	rm -rf "$dir"
	mkdir -p "$dir$(dirname "$(dirname "$bindir")")" "$dir$(dirname "$sharedir")"
	cp -a "$(dirname "$bindir")" "$dir$(dirname "$(dirname "$bindir")")/"
	cp -a "$sharedir" "$dir$(dirname "$sharedir")/"
	make -s PG_CONFIG="$pg_config" install DESTDIR="$dir" >/dev/null
	chmod -R a+rX "$dir"
	PGBIN=$dir$bindir
}

cluster_start() {
	local dir=$1 port=$2
	shift 2
	rm -rf "$dir"
	mkdir -p "$dir"
	[ "$(id -u)" = 0 ] && chown postgres: "$dir"
	"${AS_PG[@]}" "$PGBIN/initdb" -D "$dir/data" -U postgres -A trust --no-sync >"$dir/initdb.log" 2>&1 ||
		{ cat "$dir/initdb.log"; return 1; }
	{
		echo "listen_addresses = '127.0.0.1'"
		echo "port = $port"
		echo "unix_socket_directories = '$dir'"
		echo "fsync = off"
		echo "log_line_prefix = '%m [%p] %b %d '"
		for line in "$@"; do echo "$line"; done
	} >>"$dir/data/postgresql.conf"
	"${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null ||
		{ cat "$dir/server.log"; return 1; }
}

cluster_stop() {
	local dir=$1
	[ -f "$dir/data/postmaster.pid" ] || return 0
	"${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
}

cluster_psql() {
	local dir=$1 port=$2
	shift 2
	psql -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres "$@"
}
