# One launcher serves every database with the extension: two found at
# start, a third picked up at CREATE EXTENSION, DROP EXTENSION stops its
# worker, and DROP / ALTER / CREATE DATABASE ... TEMPLATE are not blocked by
# a worker connected to the database.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

use ReminderTest;

my $node = start_node('databases');
my $sink = start_sink();

sub workers
{
	return $node->safe_psql('postgres',
		"SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_stat_activity WHERE backend_type = 'reminder worker'");
}

sub served_by
{
	my ($expected) = @_;
	return wait_until(sub { workers() eq $expected }, 30);
}

# Two databases with the extension before a restart: both served after it
create_db($node, 'one');
create_db($node, 'two');
$node->safe_psql('postgres', 'CREATE DATABASE plain');
$node->restart;
ok(served_by('one,two'), 'both databases with the extension are served after a restart, the one without is not');

for my $db ('one', 'two')
{
	$node->safe_psql($db, qq{
		SELECT reminder.create_channel('hook', 'webhook', '{"url": "$sink->{url}/$db"}');
		SELECT reminder.send('hook', '{}', 't', '{}', '$db-1');
	});
	ok(query_until($node, $db, "SELECT status = 'sent' FROM reminder.message WHERE idempotency_key = '$db-1'"),
		"database $db delivers");
}

# CREATE EXTENSION in a third database: picked up at once
my $t0 = time;
create_db($node, 'three');
ok(served_by('one,three,two'), 'CREATE EXTENSION in a third database starts its worker');
cmp_ok(time - $t0, '<', 5, '... promptly');
is($node->safe_psql('three', "SELECT state FROM reminder.worker_status() WHERE database = 'three'"),
	'running', 'worker_status() in any database lists it');

# DROP EXTENSION stops the worker, and it stays stopped
$node->safe_psql('two', 'DROP EXTENSION reminder');
ok(served_by('one,three'), 'DROP EXTENSION stops its worker');
sleep 2;
is(workers(), 'one,three', '... and the launcher does not restart it');
$node->safe_psql('two', 'CREATE EXTENSION reminder');
ok(served_by('one,three,two'), 'CREATE EXTENSION again brings it back');

# A worker killed with SIGTERM is restarted by the launcher
my $pid = worker_pid($node, 'one');
kill 'TERM', $pid;
ok(wait_until(sub { my $p = worker_pid($node, 'one'); $p && $p ne $pid }, 30), 'a terminated worker is restarted');

# Statements that need the database to themselves
$t0 = time;
$node->safe_psql('postgres', 'ALTER DATABASE three RENAME TO four');
ok(served_by('four,one,two'), 'ALTER DATABASE RENAME succeeds and the worker comes back');
my $spc = PostgreSQL::Test::Utils::tempdir();
$node->safe_psql('postgres', "CREATE TABLESPACE spc LOCATION '$spc'");
$node->safe_psql('postgres', 'ALTER DATABASE four SET TABLESPACE spc');
ok(served_by('four,one,two'), 'ALTER DATABASE SET TABLESPACE succeeds and the worker comes back');
$node->safe_psql('postgres', 'CREATE DATABASE copy TEMPLATE four');
ok(served_by('copy,four,one,two'), 'CREATE DATABASE ... TEMPLATE a served database succeeds, both served');
$node->safe_psql('postgres', 'DROP DATABASE four');
$node->safe_psql('postgres', 'DROP DATABASE copy');
ok(served_by('one,two'), 'DROP DATABASE of served databases succeeds');
cmp_ok(time - $t0, '<', 15, '... without waiting for timeouts');
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_database WHERE datname IN ('four', 'copy')"), '0',
	'... the databases are gone');

# CREATE EXTENSION right after CREATE DATABASE: the new database's first
# worker may look for the extension before it commits, and exit; that
# verdict is stale, and the database must be served all the same.
my @fresh = map { "race$_" } 1 .. 8;
for my $db (@fresh)
{
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, 'CREATE EXTENSION reminder');
}
ok(served_by(join(',', sort(@fresh, 'one', 'two'))),
	'databases whose extension was created right after them are all served');
$node->safe_psql('postgres', "DROP DATABASE $_") for @fresh;

stop_sink($sink);
$node->stop;
done_testing();
