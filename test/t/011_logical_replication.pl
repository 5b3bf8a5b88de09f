# What docs/worker.md says about logical replication, checked:
# - a watch() rule on a subscriber's copy of a table sees nothing of what
#   replication applies: the apply worker runs with session_replication_role
#   = replica, so ordinary triggers do not fire, and it fires no statement
#   triggers at all, so even ENABLE ALWAYS TRIGGER only helps for the
#   initial copy of the table;
# - an outbox (reminder.message) replicated to a database where a worker
#   runs is delivered twice whenever the subscriber's worker reaches a
#   message before the publisher's claim is replicated (here: while the
#   publisher's worker is paused), and the publisher never learns of it.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use ReminderTest;

my $sink = start_sink();
my $pub = start_node('publisher', init => { allows_streaming => 'logical' });
my $sub = start_node('subscriber');
for my $node ($pub, $sub)
{
	$node->safe_psql('template1', "CREATE EXTENSION reminder; SELECT reminder.create_template('t', '')");
	$node->safe_psql('postgres', 'CREATE DATABASE app');
	$node->safe_psql('app', qq{
		SELECT reminder.create_channel('hook', 'webhook', '{"url": "$sink->{url}/hook"}');
		CREATE TABLE visits (id int PRIMARY KEY, starts_at timestamptz NOT NULL);
	});
}
my $connstr = $pub->connstr . ' dbname=app';

# 1. A watched table on the subscriber.
$pub->safe_psql('app', q{
	INSERT INTO visits VALUES (1, now() + interval '1 day');
	CREATE PUBLICATION visits FOR TABLE visits;
});
$sub->safe_psql('app', q{
	SELECT reminder.watch('visits', 'before', name => 'visit', column_name => 'starts_at',
	                      offsets => ARRAY[interval '1 hour'], channel => 'hook', template => 't',
	                      recipients => '{"role": "clinic"}');
	ALTER TABLE visits ENABLE ALWAYS TRIGGER reminder_visit_insert;
});
$sub->safe_psql('app', "CREATE SUBSCRIPTION visits CONNECTION '$connstr' PUBLICATION visits");
$sub->wait_for_subscription_sync($pub, 'visits');
is($sub->safe_psql('app', 'SELECT count(*) FROM visits'), '1', 'the initial copy arrived');
is($sub->safe_psql('app', 'SELECT count(*) FROM reminder.message'), '1',
	'with ENABLE ALWAYS, the initial copy (a COPY) fires the statement trigger: one reminder');

$pub->safe_psql('app', "INSERT INTO visits VALUES (2, now() + interval '1 day')");
$pub->wait_for_catchup('visits');
is($sub->safe_psql('app', 'SELECT count(*) FROM visits'), '2', 'a replicated INSERT arrived');
is($sub->safe_psql('app', 'SELECT count(*) FROM reminder.message'), '1',
	'but made no reminder, ENABLE ALWAYS or not: the apply worker fires no statement triggers');
$sub->safe_psql('app', "INSERT INTO visits VALUES (3, now() + interval '1 day')");
is($sub->safe_psql('app', 'SELECT count(*) FROM reminder.message'), '2',
	'a local INSERT on the subscriber does');
$sub->safe_psql('app', 'DROP SUBSCRIPTION visits');

# 2. The outbox replicated to a database with a worker of its own (one
# without messages of its own: ids come from each side's sequence, and a
# replicated id that exists there stops the apply worker).
$sub->safe_psql('postgres', 'CREATE DATABASE copy');
$sub->safe_psql('copy', qq{SELECT reminder.create_channel('hook', 'webhook', '{"url": "$sink->{url}/hook"}')});
$pub->safe_psql('app', 'CREATE PUBLICATION outbox FOR TABLE reminder.message');
$sub->safe_psql('copy', "CREATE SUBSCRIPTION outbox CONNECTION '$connstr' PUBLICATION outbox WITH (copy_data = false)");
$sub->poll_query_until('copy', "SELECT count(*) = 1 FROM pg_stat_subscription WHERE subname = 'outbox' AND pid IS NOT NULL")
  or die 'subscription did not start';
sub twice_keys
{
	my %n;
	$n{ $_->{headers}{'Idempotency-Key'} }++
	  for grep { ($_->{headers}{'Idempotency-Key'} // '') =~ /^twice-/ } sink_requests($sink);
	return \%n;
}
# The publisher's worker paused (or behind, or replication lagging): the
# subscriber's worker finds the replicated messages due and sends them.
$pub->safe_psql('app', "ALTER SYSTEM SET reminder.enabled = off; SELECT pg_reload_conf()");
ok(query_until($pub, 'app', "SELECT state = 'disabled' FROM reminder.worker_status() WHERE database = 'app'"),
	'the publisher\'s worker is paused');
$pub->safe_psql('app', "SELECT reminder.send('hook', '{}', 't', '{}', 'twice-' || g) FROM generate_series(1, 5) g");
ok(wait_until(sub { keys %{ twice_keys() } == 5 }, 30), 'the subscriber\'s worker sends the replicated messages');
is($sub->safe_psql('copy', "SELECT string_agg(DISTINCT status, ',') FROM reminder.message"), 'sent',
	'and marks them sent there');
is($pub->safe_psql('app', "SELECT string_agg(DISTINCT status, ',') FROM reminder.message"), 'scheduled',
	'which the publisher never learns');
$pub->safe_psql('app', "ALTER SYSTEM SET reminder.enabled = on; SELECT pg_reload_conf()");
ok(wait_until(sub { my $n = twice_keys(); (grep { $_ == 2 } values %$n) == 5 }, 30),
	'once the publisher\'s worker runs, it sends each of them again');
is_deeply([ sort values %{ twice_keys() } ], [ 2, 2, 2, 2, 2 ], 'twice each, with the same Idempotency-Key');

stop_sink($sink);
$sub->stop;
$pub->stop;
done_testing();
