# History with the worker: finished messages move out of the outbox into
# reminder.message_history (reminder.history_after), the worker makes the
# partitions of attempts and history ahead (reminder.history_partition), and
# retention (reminder.retention) drops whole partitions.  A worker killed
# while moving loses nothing and leaves no message in both places.  Widths
# and ages of one minute, so that a partition ages out within the test.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;

use ReminderTest;

my $node = start_node('history', conf => <<EOC);
restart_after_crash = on
reminder.history_after = 0
reminder.history_partition = 1
reminder.retention = 1
EOC
my $sink = start_sink();
create_db($node, 'app');
my $url = $sink->{url};

$node->safe_psql('app', qq{
	SELECT reminder.create_channel('hook', 'webhook', '{"url": "$url/hook"}');
	SELECT reminder.send('hook', '{}', 't', jsonb_build_object('n', g), 'first-' || g)
	  FROM generate_series(1, 200) g;
	SELECT reminder.schedule('hook', '{}', 't', now() + interval '1 day', '{}', 'tomorrow');
});

ok(query_until($node, 'app', q{
	SELECT count(*) = 200 FROM reminder.message_history
	 WHERE idempotency_key LIKE 'first-%' AND status = 'sent'}),
	'sent messages move to history');
is($node->safe_psql('app', "SELECT count(*) FROM reminder.message WHERE idempotency_key LIKE 'first-%'"),
	'0', '... and leave the outbox');
is($node->safe_psql('app', "SELECT status FROM reminder.message WHERE idempotency_key = 'tomorrow'"),
	'scheduled', 'a pending message stays');
is(scalar(grep { $_->{path} eq '/hook' } sink_requests($sink)), 200, 'each was delivered once');
# the first rows made the first partition, which took them from the default
ok(query_until($node, 'app', q{
	SELECT m.tableoid::regclass::text <> 'reminder.message_history_default'
	  FROM reminder.message_history m WHERE idempotency_key = 'first-1'}),
	'the first rows make the first partitions');
my $first = $node->safe_psql('app', q{
	SELECT DISTINCT m.tableoid::regclass FROM reminder.message_history m WHERE idempotency_key = 'first-1'});
like($first, qr/^reminder\.message_history_\d{8}_\d{4}$/, "history is kept in a partition of a minute ($first)");
ok(wait_until(sub { slurp_file($node->logfile) =~ /made partition reminder\.attempt_\d{8}_\d{4}/ }),
	'the worker says which partitions it makes');
ok($node->safe_psql('app', q{
	SELECT count(*) >= 2 FROM reminder._partitions('reminder.message_history') WHERE hi > now()}),
	'it makes them ahead');
ok(query_until($node, 'app', q{
	SELECT (SELECT count(*) FROM reminder.attempt_default) + (SELECT count(*) FROM reminder.message_history_default) = 0}),
	'the default partitions keep nothing: the first rows made the first partitions');

# A dump restores its partitions into a new database with a worker: the
# worker makes none there before rows come.
my $dump = $node->basedir . '/app.sql';
my $in_first = $node->safe_psql('app', "SELECT count(*) FROM $first");
$node->command_ok([ 'pg_dump', '-d', $node->connstr('app'), '-f', $dump ], 'pg_dump with partitions');
$node->safe_psql('postgres', 'CREATE DATABASE copy');
$node->command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('copy'), '-f', $dump ],
	'restores without error');
# (counts only of what no worker changes meanwhile: both purge with a
# one-minute retention)
is($node->safe_psql('copy', "SELECT count(*) FROM reminder.messages"),
	$node->safe_psql('app', "SELECT count(*) FROM reminder.messages"), 'with the same messages');
is($node->safe_psql('copy', "SELECT count(*) FROM $first"), $in_first, "in the same partitions ($first)");
$node->safe_psql('postgres', 'DROP DATABASE copy WITH (FORCE)');

# Killed while moving: every message ends up in exactly one place.
$node->safe_psql('app', q{
	SELECT reminder.send('hook', '{}', 't', jsonb_build_object('n', g), 'kill-' || g)
	  FROM generate_series(1, 5000) g});
ok(query_until($node, 'app', "SELECT count(*) > 0 FROM reminder.message_history WHERE idempotency_key LIKE 'kill-%'"),
	'moving has begun');
my $pid = worker_pid($node, 'app');
ok(kill('KILL', $pid), "worker $pid killed");
ok(query_until($node, 'app', q{
	SELECT count(*) = 5000 FROM reminder.message_history
	 WHERE idempotency_key LIKE 'kill-%' AND status = 'sent'}, 't', 180),
	'after the restart every message is sent and moved');
is($node->safe_psql('app', q{
	SELECT count(*) FROM reminder.messages WHERE idempotency_key LIKE 'kill-%'}),
	'5000', 'none is in the outbox and in history both, none twice in history');
my %seen;
$seen{ $_->{headers}{'Idempotency-Key'} // '' }++ for sink_requests($sink);
is(scalar(grep { /^kill-/ } keys %seen), 5000, 'the sink got every one of them');

# Retention: the first minute's partitions go as a whole, the pending
# message stays.
ok(query_until($node, 'app', "SELECT to_regclass('$first') IS NULL", 't', 300),
	"retention drops $first once all of it is a minute old");
is($node->safe_psql('app', "SELECT count(*) FROM reminder.messages WHERE idempotency_key LIKE 'first-%'"),
	'0', 'its messages are gone');
ok($node->safe_psql('app', q{
	SELECT count(*) > 0 AND bool_and(hi > now() - interval '3 minutes') FROM reminder._partitions('reminder.attempt')}),
	'old partitions of attempts go too');
is($node->safe_psql('app', "SELECT status FROM reminder.message WHERE idempotency_key = 'tomorrow'"),
	'scheduled', 'the pending message is never purged');
unlike(slurp_file($node->logfile), qr/ERROR:.*(partition|history|purg)/i, 'no errors keeping history');

# A long reader of attempts: purge does not wait for it (which would hold
# up every writer of attempts queued behind its DROP), and leaves the
# partition for the next run.
my $reader = $node->background_psql('app');
$reader->query_safe('BEGIN');
$reader->query_safe('SELECT count(*) FROM reminder.attempt');
my $old = $node->safe_psql('app', q{
	SELECT count(*) FROM reminder._partitions('reminder.attempt') WHERE hi <= now()});
ok($old > 0, "a partition of attempts is old enough to go ($old)");
my ($ret, $out, $err) = $node->psql('app', "SELECT purged FROM reminder.purge('0') WHERE object = 'attempts'");
is($ret, 0, 'purge() runs while attempts are being read');
like($err, qr/NOTICE:  partition reminder\.attempt_\d{8}_\d{4} is in use, and is left for the next purge/,
	'and says which partition it left');
ok($node->safe_psql('app', q{
	SELECT count(*) > 0 FROM reminder._partitions('reminder.attempt') WHERE hi <= now()}), 'which is still there');
$reader->query_safe('COMMIT');
$reader->quit;
$node->safe_psql('app', "SELECT reminder.purge('0')");
is($node->safe_psql('app', q{
	SELECT count(*) FROM reminder._partitions('reminder.attempt') WHERE hi <= now() - interval '1 second'}),
	'0', 'the next purge drops it');

$node->stop;
stop_sink($sink);
done_testing();
