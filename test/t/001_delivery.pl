# Delivery through a real HTTP server: a batch, the headers and signature of
# a webhook, a message due later, a cancelled one, the log channel, what a
# DBA sees (worker_status, pg_stat_activity) and the latency at idle.
use strict;
use warnings;

use Digest::SHA qw(hmac_sha256_hex);
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

use ReminderTest;

my $node = start_node('delivery');
my $sink = start_sink();
create_db($node, 'app');

$node->safe_psql('app', qq{
	SELECT reminder.create_channel('hook', 'webhook',
		jsonb_build_object('url', '$sink->{url}/hook',
		                   'headers', jsonb_build_object('X-Source', 'tests')),
		'{"signing_secret": "s3cret", "bearer_token": "tok"}');
	SELECT reminder.create_channel('put', 'webhook',
		jsonb_build_object('url', '$sink->{url}/put', 'method', 'PUT'));
	SELECT reminder.create_channel('journal', 'log');
	SELECT reminder.create_template('hello', '{"text": "hello"}', 'Greetings');
});

# What a DBA sees
ok(query_until($node, 'app',
		"SELECT count(*) = 1 FROM reminder.worker_status() WHERE database = 'app' AND state = 'running'"),
	'worker_status() shows the running worker of app');
is($node->safe_psql('app', "SELECT count(*) FROM reminder.worker_status() WHERE state = 'launcher'"),
	'1', 'worker_status() shows the launcher');
is($node->safe_psql('postgres',
		"SELECT string_agg(backend_type || ':' || coalesce(datname, '-'), ',' ORDER BY backend_type) "
	  . "FROM pg_stat_activity WHERE backend_type LIKE 'reminder%'"),
	'reminder launcher:-,reminder worker:app',
	'pg_stat_activity shows the launcher and the worker by backend_type');

# A batch
$node->safe_psql('app', q{
	SELECT reminder.send('hook', jsonb_build_object('name', 'r' || g), 't',
	                     jsonb_build_object('n', g), 'batch-' || g)
	FROM generate_series(1, 300) g;
});
ok(query_until($node, 'app', "SELECT count(*) = 300 FROM reminder.message WHERE status = 'sent'"),
	'a batch of 300 is sent');
my @reqs = grep { $_->{path} eq '/hook' } sink_requests($sink);
is(scalar(@reqs), 300, 'the sink got 300 requests');
my %keys = map { $_->{headers}{'Idempotency-Key'} => $_ } @reqs;
is(scalar(keys %keys), 300, 'each with its own Idempotency-Key');
my $r = $keys{'batch-7'};
ok($r, 'the key is the message\'s idempotency key');
is($r->{method}, 'POST', 'webhooks POST by default');
is($r->{headers}{'Content-Type'}, 'application/json', 'Content-Type is JSON');
like($r->{headers}{'User-Agent'}, qr{^reminder/\d}, 'User-Agent names reminder');
is($r->{headers}{'Authorization'}, 'Bearer tok', 'bearer token sent');
is($r->{headers}{'X-Source'}, 'tests', 'extra header from settings sent');
is($r->{headers}{'X-Reminder-Signature'}, 'sha256=' . hmac_sha256_hex($r->{body}, 's3cret'),
	'signature is the HMAC-SHA256 of the exact body');
my $body = decode_json($r->{body});
is_deeply([ $body->{channel}, $body->{recipient}{name}, $body->{data}{n} ], [ 'hook', 'r7', 7 ],
	'an empty template gives the default JSON body');
is($node->safe_psql('app', "SELECT count(*) FROM reminder.attempt a JOIN reminder.message m ON m.id = a.message_id "
		. "WHERE m.channel = 'hook' AND a.outcome = 'sent' AND a.http_status = 200 AND a.attempt = 1"),
	'300', 'one attempt row per message, with its HTTP status');

# A rendered body, PUT, and the recipient's url overriding the channel's
$node->safe_psql('app', qq{
	SELECT reminder.send('put', '{}', 'hello', '{}', 'put-1');
	SELECT reminder.send('hook', '{"url": "$sink->{url}/elsewhere"}', 'hello', '{}', 'over-1');
});
ok(query_until($node, 'app', "SELECT count(*) = 2 FROM reminder.message WHERE idempotency_key IN ('put-1', 'over-1') AND status = 'sent'"),
	'templated messages sent');
my ($put) = grep { $_->{headers}{'Idempotency-Key'} eq 'put-1' } sink_requests($sink);
is($put->{method}, 'PUT', 'the channel\'s method is used');
is($put->{body}, '{"text": "hello"}', 'the rendered body is sent as is');
my ($over) = grep { $_->{headers}{'Idempotency-Key'} eq 'over-1' } sink_requests($sink);
is($over->{path}, '/elsewhere', 'the recipient\'s url overrides the channel\'s');

# Due in 2 s: sent then, not before
my $t0 = time;
$node->safe_psql('app', "SELECT reminder.schedule('hook', '{}', 't', now() + interval '2 seconds', '{}', 'later-1')");
ok(query_until($node, 'app', "SELECT status = 'sent' FROM reminder.message WHERE idempotency_key = 'later-1'"),
	'a message due in 2 s is sent');
cmp_ok(time - $t0, '>=', 1.9, '... not before it is due');
my ($later) = grep { $_->{headers}{'Idempotency-Key'} eq 'later-1' } sink_requests($sink);
cmp_ok($later->{t} - $t0, '<', 3.0, '... and promptly once due');
is($node->safe_psql('app', "SELECT sent_at >= due_at FROM reminder.message WHERE idempotency_key = 'later-1'"),
	't', '... sent_at is not before due_at');

# Cancelled before due: never sent
my $id = $node->safe_psql('app',
	"SELECT reminder.schedule('hook', '{}', 't', now() + interval '1 second', '{}', 'cancel-1')");
$node->safe_psql('app', "SELECT reminder.cancel($id)");
sleep 2;
is($node->safe_psql('app', "SELECT status FROM reminder.message WHERE id = $id"), 'cancelled',
	'a message cancelled before it is due stays cancelled');
ok(!grep({ $_->{headers}{'Idempotency-Key'} eq 'cancel-1' } sink_requests($sink)), '... and is never sent');

# The log channel
$node->safe_psql('app', "SELECT reminder.send('journal', '{\"name\": \"Ada\"}', 'hello', '{}', 'log-1')");
ok(query_until($node, 'app', "SELECT status = 'sent' FROM reminder.message WHERE idempotency_key = 'log-1'"),
	'a log message is sent');
is($node->safe_psql('app', "SELECT l.subject || '|' || l.body || '|' || (l.recipient->>'name') FROM reminder.log l "
		. "JOIN reminder.message m ON m.id = l.message_id WHERE m.idempotency_key = 'log-1'"),
	'Greetings|{"text": "hello"}|Ada', '... into reminder.log, rendered');

# Latency at idle: due now, sent within tens of milliseconds
my @lat;
for my $i (1 .. 10)
{
	$node->safe_psql('app', "SELECT reminder.send('hook', '{}', 't', '{}', 'idle-$i')");
	query_until($node, 'app', "SELECT status = 'sent' FROM reminder.message WHERE idempotency_key = 'idle-$i'");
}
my $max = $node->safe_psql('app',
	"SELECT max(extract(epoch FROM sent_at - due_at)) FROM reminder.message WHERE idempotency_key LIKE 'idle-%'");
cmp_ok($max, '<', 0.2, "due->sent at idle stays well under a second (worst of 10: ${max}s)");

my $status = $node->safe_psql('app', "SELECT sent FROM reminder.worker_status() WHERE database = 'app'");
cmp_ok($status, '>=', 313, 'worker_status() counts what was sent');

stop_sink($sink);
$node->stop;
done_testing();
