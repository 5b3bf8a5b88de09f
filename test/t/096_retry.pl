# Dead letters with the worker: a webhook channel pointing at a dead port
# fails its messages; the channel is fixed; reminder.retry() requeues them;
# the worker delivers each exactly once, and the attempt history holds both
# rounds.  A failed message whose fallback took over is not retried, so it
# is never delivered twice.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;

use ReminderTest;

my $node = start_node('retry');
my $sink = start_sink();
create_db($node, 'app');
my $url = $sink->{url};

# port 1 on loopback refuses connections: a transient failure each time
$node->safe_psql('app', q{
	SELECT reminder.create_channel('hook', 'webhook',
		'{"url": "http://127.0.0.1:1/hook", "retry_delay": "0.1", "retry_max_delay": "0.2", "max_attempts": 2}');
	SELECT reminder.create_channel('journal', 'log');
	SELECT reminder.create_channel('hook_fb', 'webhook',
		'{"url": "http://127.0.0.1:1/fb", "max_attempts": 1, "fallback": "journal"}');
	SELECT reminder.send('hook', jsonb_build_object('name', 'r' || g), 't', '{}', 'dead-' || g)
	  FROM generate_series(1, 5) g;
	SELECT reminder.send('hook_fb', '{"name": "f"}', 't', '{}', 'fb-1');
});

ok(query_until($node, 'app',
		"SELECT count(*) = 5 FROM reminder.message WHERE idempotency_key LIKE 'dead-%' AND status = 'failed'"),
	'a channel pointing at a dead port fails its messages after max_attempts');
ok(query_until($node, 'app',
		"SELECT status = 'sent' FROM reminder.message WHERE idempotency_key = 'fb-1:fallback'"),
	'the fallback of the other channel\'s failed message is delivered');
is($node->safe_psql('app', q{
	SELECT string_agg(DISTINCT a.attempt || ':' || a.outcome, ',') FROM reminder.attempt a
	  JOIN reminder.message m ON m.id = a.message_id WHERE m.idempotency_key LIKE 'dead-%'}),
	'1:transient,2:permanent', 'each failed after two attempts, the last one giving up');

# the channel is fixed
$node->safe_psql('app', qq{
	SELECT reminder.create_channel('hook', 'webhook',
		'{"url": "$url/hook", "retry_delay": "0.1", "retry_max_delay": "0.2", "max_attempts": 2}');
	SELECT reminder.create_channel('hook_fb', 'webhook', '{"url": "$url/fb", "max_attempts": 1, "fallback": "journal"}');
});
my ($ret, $out, $err) = $node->psql('app', "SELECT reminder.retry(channel => 'hook')");
is($out, '5', 'retry(channel) requeues the five failed messages');
($ret, $out, $err) = $node->psql('app', "SELECT reminder.retry(channel => 'hook_fb')");
is($out, '0', 'retry(channel) skips a message whose fallback took over');
like($err, qr/NOTICE:  1 failed messages were not retried\nDETAIL:  Taken over by their fallback message: 1;/,
	'... and says so');

ok(query_until($node, 'app',
		"SELECT count(*) = 5 FROM reminder.message WHERE idempotency_key LIKE 'dead-%' AND status = 'sent'"),
	'the worker delivers them');
sleep 1;    # anything sent twice would show by now
my @hook = grep { $_->{path} eq '/hook' } sink_requests($sink);
is(scalar(@hook), 5, 'the sink got five requests');
my %keys = map { (($_->{headers}{'Idempotency-Key'} // $_->{headers}{'idempotency-key'} // '') => 1) } @hook;
is(join(',', sort keys %keys), 'dead-1,dead-2,dead-3,dead-4,dead-5', '... one per message, each once, with its idempotency key');
is(scalar(grep { $_->{path} eq '/fb' } sink_requests($sink)), 0, 'the message its fallback took over was not sent again');

is($node->safe_psql('app', q{
	SELECT string_agg(DISTINCT (SELECT string_agg(a.attempt || ':' || a.outcome, ',' ORDER BY a.id)
	                              FROM reminder.attempt a WHERE a.message_id = m.id)
	                  || ' attempts=' || m.attempts || ' retries=' || m.retries, '; ')
	  FROM reminder.message m WHERE m.idempotency_key LIKE 'dead-%'}),
	'1:transient,2:permanent,1:sent attempts=1 retries=1',
	'the attempt history holds both rounds; the retry started a fresh set of attempts');
($ret, $out, $err) = $node->psql('app', "SELECT reminder.retry(id) FROM reminder.message WHERE idempotency_key = 'dead-1'");
like($err, qr/ERROR:  cannot retry message \d+ because it was sent/, 'retrying a delivered message is refused');

is($node->safe_psql('app', "SELECT count(*) FROM reminder.message WHERE status = 'sending'"), '0', 'nothing left in flight');

stop_sink($sink);
$node->stop;
done_testing();
