# The worker honours the send-time gate: a recipient who opted out after a
# message was scheduled gets nothing (the message ends suppressed), and a
# message falling due inside the recipient's quiet hours is deferred to
# their end, not sent and not dropped; an opt-out kept by forget() still
# holds for the address imported again; reminder.retention makes the
# worker purge old finished messages.  Uses the log channel, so no
# outside server is involved.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('gate');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'reminder'
reminder.poll_interval = '100ms'
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION reminder');

if ($node->safe_psql('postgres',
		q{SELECT count(*) FROM pg_proc WHERE proname = 'worker_status' AND pronamespace = 'reminder'::regnamespace}) eq '0')
{
	$node->stop;
	plan skip_all => 'the background worker is not part of this build yet';
}

$node->safe_psql('postgres', q{
	SELECT reminder.create_channel('log', 'log');
	SELECT reminder.create_template('t', 'Hello');
	SELECT reminder.upsert_recipient('opted', email => 'opted@example.com');
});

# Scheduled for a moment from now, then the recipient opts out.
my $opted = $node->safe_psql('postgres', q{
	SELECT reminder.schedule('log', '{"external_id": "opted"}', 't', now() + interval '2 seconds')});
$node->safe_psql('postgres', q{SELECT reminder.opt_out('{"external_id": "opted"}', NULL, NULL, 'tap test')});

# Quiet now (UTC), for the next two hours.
my $quiet = $node->safe_psql('postgres', q{
	SELECT reminder.schedule('log', jsonb_build_object('email', 'night@example.com', 'time_zone', 'UTC',
		'quiet_hours', jsonb_build_object('start', to_char(now() - interval '2 hours', 'HH24:MI'),
		                                  'end', to_char(now() + interval '2 hours', 'HH24:MI'))), 't')});

# A control message that must go out, proving the worker runs.
my $plain = $node->safe_psql('postgres', q{
	SELECT reminder.schedule('log', '{"email": "plain@example.com"}', 't')});

ok($node->poll_query_until('postgres', "SELECT status = 'sent' FROM reminder.message WHERE id = $plain"),
	'the worker delivers an ordinary message');
ok($node->poll_query_until('postgres', "SELECT status = 'suppressed' FROM reminder.message WHERE id = $opted"),
	'a message to a recipient who opted out after scheduling ends suppressed');
like($node->safe_psql('postgres', "SELECT last_error FROM reminder.message WHERE id = $opted"),
	qr/opted out/, 'with the opt-out as the reason');
ok($node->poll_query_until('postgres',
		"SELECT last_error LIKE 'quiet hours%' FROM reminder.message WHERE id = $quiet"),
	'a message due inside quiet hours is deferred');
is($node->safe_psql('postgres', qq{
	SELECT status IN ('scheduled', 'retrying') AND next_attempt_at > now() + interval '1 hour 50 minutes'
	  FROM reminder.message WHERE id = $quiet}), 't',
	'to the end of the quiet hours, still waiting: not sent, not dropped');
is($node->safe_psql('postgres', "SELECT count(*) FROM reminder.log WHERE message_id IN ($opted, $quiet)"), '0',
	'neither reached the log channel');

# Erased on request, imported again later: the opt-out the erasure kept
# (by hashed address) still holds, in the worker's batch check too.
is($node->safe_psql('postgres', q{
	SELECT erased FROM reminder.forget('{"external_id": "opted"}') WHERE object = 'opt_outs_kept'}),
	'1', 'forget() keeps her opt-out, by hashed address');
$node->safe_psql('postgres', q{SELECT reminder.upsert_recipient('opted-again', email => 'Opted@Example.com')});
my $again = $node->safe_psql('postgres', q{
	SELECT reminder.schedule('log', '{"external_id": "opted-again"}', 't')});
my $other = $node->safe_psql('postgres', q{
	SELECT reminder.schedule('log', '{"email": "someone@example.com"}', 't')});
ok($node->poll_query_until('postgres', "SELECT status = 'suppressed' FROM reminder.message WHERE id = $again"),
	'a message to the address imported again is suppressed');
ok($node->poll_query_until('postgres', "SELECT status = 'sent' FROM reminder.message WHERE id = $other"),
	'while others go out');
like($node->safe_psql('postgres', "SELECT last_error FROM reminder.message WHERE id = $again"),
	qr/kept at erasure/, 'the reason says where the opt-out came from');

# Retention: the worker purges finished messages older than
# reminder.retention, once it is set (here by a reload), and keeps the rest.
$node->safe_psql('postgres', qq{
	UPDATE reminder.message SET updated_at = now() - interval '2 hours', sent_at = now() - interval '2 hours'
	 WHERE id = $plain});
$node->append_conf('postgresql.conf', "reminder.retention = '1h'");
$node->reload;
ok($node->poll_query_until('postgres', "SELECT count(*) = 0 FROM reminder.message WHERE id = $plain"),
	'reminder.retention: the worker purges an old finished message');
is($node->safe_psql('postgres', "SELECT count(*) FROM reminder.attempt WHERE message_id = $plain"), '0',
	'... with its attempts');
is($node->safe_psql('postgres', "SELECT status FROM reminder.message WHERE id = $other"), 'sent',
	'... and keeps a recent one');
is($node->safe_psql('postgres', "SELECT count(*) FROM reminder.message WHERE id = $quiet"), '1',
	'... and one still pending');

$node->stop;
done_testing();
