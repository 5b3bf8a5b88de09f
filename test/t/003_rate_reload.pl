# A rate-limited channel is paced while other channels flow, and SIGHUP
# changes the worker's settings (here the claim batch size) on the fly.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;

use ReminderTest;

my $node = start_node('rate', conf => "reminder.batch_size = 10\nlog_min_messages = debug1\n");
my $sink = start_sink();
create_db($node, 'app');
my $url = $sink->{url};

$node->safe_psql('app', qq{
	SELECT reminder.create_channel('paced', 'webhook', '{"url": "$url/paced", "rate_limit": 5}');
	SELECT reminder.create_channel('free', 'webhook', '{"url": "$url/free"}');
});

# 10 messages at 5/s next to 200 unlimited ones, all due now
$node->safe_psql('app', q{
	SELECT reminder.send('paced', '{}', 't', '{}', 'paced-' || g) FROM generate_series(1, 10) g;
	SELECT reminder.send('free', '{}', 't', '{}', 'free-' || g) FROM generate_series(1, 200) g;
});
ok(query_until($node, 'app', "SELECT count(*) = 210 FROM reminder.message WHERE status = 'sent'"),
	'all messages of both channels sent');

my ($span, $min_gap) = split /\|/, $node->safe_psql('app', q{
	WITH a AS (
		SELECT a.started_at, a.started_at - lag(a.started_at) OVER (ORDER BY a.started_at) AS gap
		FROM reminder.attempt a JOIN reminder.message m ON m.id = a.message_id
		WHERE m.channel = 'paced')
	SELECT extract(epoch FROM max(started_at) - min(started_at)), extract(epoch FROM min(gap)) FROM a});
cmp_ok($span, '>=', 1.6, "10 messages at 5/s take at least 1.8 s less jitter (took $span s)");
cmp_ok($min_gap, '>=', 0.15, "... one every 200 ms, no bursts (smallest gap $min_gap s)");
is($node->safe_psql('app', q{
	SELECT max(f.sent_at) < max(p.sent_at)
	FROM reminder.message f, reminder.message p WHERE f.channel = 'free' AND p.channel = 'paced'}),
	't', 'the unlimited channel is not held back by the paced one');

# SIGHUP: batch size 10, then 3
like(slurp_file($node->logfile), qr/claimed 10 messages \(limit 10\)/, 'batches of 10 claimed');
$node->append_conf('postgresql.conf', "reminder.batch_size = 3\n");
$node->reload;
ok(query_until($node, 'app', "SELECT current_setting('reminder.batch_size') = '3'"), 'batch size reloaded');
sleep 1;
my $offset = -s $node->logfile;
$node->safe_psql('app', q{
	SELECT reminder.send('free', '{}', 't', '{}', 'after-' || g) FROM generate_series(1, 30) g;
});
ok(query_until($node, 'app', "SELECT count(*) = 30 FROM reminder.message WHERE idempotency_key LIKE 'after-%' AND status = 'sent'"),
	'messages sent after the reload');
my $log = substr(slurp_file($node->logfile), $offset);
my @claims = $log =~ /claimed (\d+) messages \(limit (\d+)\)/g;
my @sizes = @claims[ grep { $_ % 2 == 0 } 0 .. $#claims ];
ok(@sizes >= 10, 'claims after the reload seen in the log (' . scalar(@sizes) . ')');
ok(!grep({ $_ > 3 } @sizes), '... none larger than the new batch size');
ok(grep({ $_ == 3 } @sizes), '... and full batches of 3');

stop_sink($sink);
$node->stop;
done_testing();
