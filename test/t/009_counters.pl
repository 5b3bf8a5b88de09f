# Cumulative delivery counters (reminder.delivery_counters()): per database,
# they outlive a worker's restart and a server restart, start again from
# zero after reminder.stats_reset() and after a crash, like the server's
# own cumulative statistics.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use ReminderTest;

my $node = start_node('counters', conf => "restart_after_crash = on\n");
my $sink = start_sink();
# The extension comes from template1, so each database has it when its worker
# first looks (CREATE EXTENSION right after CREATE DATABASE races with the
# launcher's first look).
$node->safe_psql('template1', "CREATE EXTENSION reminder; SELECT reminder.create_template('t', '')");
$node->safe_psql('postgres', 'CREATE DATABASE app; CREATE DATABASE shop;');
for my $db (qw(app shop))
{
	$node->safe_psql($db, qq{
		SELECT reminder.create_channel('journal', 'log');
		-- 503 twice: one attempt to be retried, then failed for good
		SELECT reminder.create_channel('down', 'webhook',
			'{"url": "$sink->{url}/status/503", "retry_delay": "0.1", "max_attempts": 2}');
	});
}

sub send_log
{
	my ($db, $n, $tag) = @_;
	$node->safe_psql($db,
		"SELECT reminder.send('journal', '{}', 't', '{}', '$tag-' || g) FROM generate_series(1, $n) g");
	ok(query_until($node, $db, "SELECT count(*) = 0 FROM reminder.message WHERE status <> 'sent' AND channel = 'journal'"),
		"$db: $n messages through the log channel are sent");
}

is($node->safe_psql('app', 'SELECT count(*) FROM reminder.delivery_counters()'), '0',
	'nothing delivered yet, nothing counted');

send_log('app', 3, 'a');
$node->safe_psql('app', "SELECT reminder.send('down', '{}', 't')");
ok(query_until($node, 'app', "SELECT status = 'failed' FROM reminder.message WHERE channel = 'down'"),
	'app: the message to a failing webhook fails after two attempts');
ok(query_until($node, 'app', "SELECT sent || '/' || failed || '/' || retried = '3/1/1' FROM reminder.delivery_counters() WHERE database = 'app'"),
	'app counts 3 sent, 1 failed, 1 retried');
# (a worker publishes its own counters at the start of its next loop)
ok(query_until($node, 'app', "SELECT sent || '/' || failed || '/' || retried = '3/1/1' FROM reminder.worker_status() WHERE database = 'app'"),
	'as its worker does since it started');
ok($node->safe_psql('app', "SELECT stats_reset BETWEEN now() - interval '1 minute' AND now() FROM reminder.delivery_counters() WHERE database = 'app'") eq 't',
	'stats_reset is when counting began');
send_log('shop', 2, 's');
ok(query_until($node, 'app', "SELECT sent = 2 FROM reminder.delivery_counters() WHERE database = 'shop'"),
	'shop is counted apart');

# A worker's restart: its own counters start over, the cumulative ones do not.
my $pid = worker_pid($node, 'app');
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
ok(query_until($node, 'app', "SELECT count(*) = 1 FROM reminder.worker_status() WHERE database = 'app' AND state = 'running' AND pid <> $pid"),
	'the worker of app is restarted');
send_log('app', 2, 'b');
ok(query_until($node, 'app', "SELECT sent = 5 FROM reminder.delivery_counters() WHERE database = 'app'"),
	'after the restart app counts on: 3 + 2 sent');
ok(query_until($node, 'app', "SELECT sent || '/' || failed || '/' || retried = '2/0/0' FROM reminder.worker_status() WHERE database = 'app'"),
	'while the new worker counts only its own 2');

# Reset: the current database's counters only.
my $before = $node->safe_psql('app', "SELECT stats_reset FROM reminder.delivery_counters() WHERE database = 'app'");
$node->safe_psql('app', 'SELECT reminder.stats_reset()');
is($node->safe_psql('app', "SELECT sent || '/' || failed || '/' || retried || ' ' || (stats_reset > '$before') FROM reminder.delivery_counters() WHERE database = 'app'"),
	'0/0/0 true', 'stats_reset() zeroes app\'s counters and moves stats_reset');
is($node->safe_psql('app', "SELECT sent FROM reminder.delivery_counters() WHERE database = 'shop'"),
	'2', 'and leaves shop\'s alone');
send_log('app', 1, 'c');
ok(query_until($node, 'app', "SELECT sent = 1 FROM reminder.delivery_counters() WHERE database = 'app'"),
	'app counts from zero again');

# A clean restart keeps them, stats_reset included.
my $kept = $node->safe_psql('app', "SELECT string_agg(database || ':' || sent || ':' || stats_reset, ' ' ORDER BY database) FROM reminder.delivery_counters()");
$node->restart;
is($node->safe_psql('app', "SELECT string_agg(database || ':' || sent || ':' || stats_reset, ' ' ORDER BY database) FROM reminder.delivery_counters()"),
	$kept, 'a clean restart keeps every database\'s counters and stats_reset');
ok(!-e $node->data_dir . '/pg_stat/reminder.stat', 'the saved file is removed once read');
send_log('app', 1, 'd');
ok(query_until($node, 'app', "SELECT sent = 2 FROM reminder.delivery_counters() WHERE database = 'app'"),
	'and counting goes on from there');

# An immediate stop saves them too (the postmaster exits normally, as
# pg_stat_statements relies on).
$node->stop('immediate');
$node->start;
is($node->safe_psql('app', "SELECT sent FROM reminder.delivery_counters() WHERE database = 'app'"), '2',
	'an immediate stop and start keeps them');

# A crash loses them, as it loses the server's own statistics: a worker
# killed makes the postmaster reinitialise shared memory.
$pid = worker_pid($node, 'app');
ok(kill('KILL', $pid), "worker $pid killed");
ok($node->poll_query_until('app', "SELECT count(*) = 1 FROM reminder.worker_status() WHERE database = 'app' AND state = 'running' AND pid <> $pid"),
	'the server is back after the crash');
ok($node->log_contains(qr/all server processes terminated; reinitializing/), 'the postmaster reinitialised');
is($node->safe_psql('app', 'SELECT count(*) FROM reminder.delivery_counters()'), '0',
	'after a crash the counters start again from nothing');

# Without the library preloaded there are no counters to reset.
my $plain = PostgreSQL::Test::Cluster->new('plain');
$plain->init;
$plain->start;
$plain->safe_psql('postgres', 'SET client_min_messages = warning; CREATE EXTENSION reminder');
is($plain->safe_psql('postgres', 'SELECT count(*) FROM reminder.delivery_counters()'), '0',
	'not preloaded: delivery_counters() is empty');
my ($ret, $out, $err) = $plain->psql('postgres', 'SELECT reminder.stats_reset()');
like($err, qr/ERROR:  reminder delivery counters are not kept/, 'and stats_reset() says why it cannot reset');
$plain->stop;

stop_sink($sink);
$node->stop;
done_testing();
