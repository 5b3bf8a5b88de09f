# Priority and fairness: a high-priority message goes before a backlog due
# at the same time, channels take turns in each claim, and a channel with a
# backlog on a slow receiver cannot hold up another channel's messages.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

use ReminderTest;

my $node = start_node('priority');
my $sink = start_sink();
create_db($node, 'app');
my $url = $sink->{url};

$node->safe_psql('app', qq{
	SELECT reminder.create_channel('bulk', 'webhook', '{"url": "$url/bulk"}');
	SELECT reminder.create_channel('other', 'webhook', '{"url": "$url/other"}');
	SELECT reminder.create_channel('urgent', 'webhook', '{"url": "$url/urgent", "priority": "high"}');
	SELECT reminder.create_channel('slow', 'webhook', '{"url": "$url/hang/1", "timeout": "5"}');
	SELECT reminder.create_channel('slower', 'webhook', '{"url": "$url/hang/2", "timeout": "5"}');
});

sub pause
{
	my ($on) = @_;
	$node->safe_psql('app', "ALTER SYSTEM SET reminder.enabled = " . ($on ? 'off' : 'on') . "; SELECT pg_reload_conf()");
	ok(query_until($node, 'app', "SELECT state FROM reminder.worker_status() WHERE database = 'app'",
			$on ? 'disabled' : 'running'), $on ? 'worker paused' : 'worker resumed');
}

# 1. All due at once: 400 normal messages on "bulk", then 5 high-priority ones
# on the same channel, 5 on a channel whose default is high, and 5 normal
# ones on another channel.  The worker starts with the high ones, and the
# other channel's turn comes in the first claim.
pause(1);
$node->safe_psql('app', q{
	SELECT reminder.send('bulk', '{}', 't', '{}', 'bulk-' || g) FROM generate_series(1, 400) g;
	SELECT reminder.send('bulk', '{}', 't', '{}', 'high-' || g, priority => 'high') FROM generate_series(1, 5) g;
	SELECT reminder.send('urgent', '{}', 't', '{}', 'urgent-' || g) FROM generate_series(1, 5) g;
	SELECT reminder.send('other', '{}', 't', '{}', 'other-' || g) FROM generate_series(1, 5) g;
});
pause(0);
ok(query_until($node, 'app', "SELECT count(*) = 415 FROM reminder.message WHERE status = 'sent'"), 'all 415 are sent');
my @order = map { $_->{headers}{'Idempotency-Key'} } sort { $a->{t} <=> $b->{t} } sink_requests($sink);
my %rank;
@rank{@order} = (0 .. $#order);
my @high = map { $rank{$_} } map { ("high-$_", "urgent-$_") } 1 .. 5;
my @other = map { $rank{"other-$_"} } 1 .. 5;
cmp_ok((sort { $b <=> $a } @high)[0], '<', 30,
	'the 10 high-priority messages are among the first requests, though queued after 400 others');
cmp_ok((sort { $b <=> $a } @other)[0], '<', 130,
	'the other channel\'s 5 go out within the first claim, not after the 400 of the busy channel');
is($node->safe_psql('app', q{
	SELECT string_agg(DISTINCT priority::text, ',') FROM reminder.message WHERE idempotency_key ~ '^(high|urgent)-'}),
	'1', 'priority stored as 1 (high), from the message or its channel');

# 2. Head of line: a backlog on a slow receiver (1 s per request, 16
# connections to it) must not hold up another channel: messages due while
# it drains go out at once.
$node->safe_psql('app', q{
	SELECT reminder.send('slow', '{}', 't', '{}', 'slow-' || g) FROM generate_series(1, 300) g;
});
ok(wait_until(sub { grep({ $_->{path} eq '/hang/1' } sink_requests($sink)) >= 16 }), 'the slow backlog is draining');
$node->safe_psql('app', q{
	SELECT reminder.schedule('other', '{}', 't', now() + g * interval '100 ms', '{}', 'late-' || g)
	  FROM generate_series(1, 20) g;
});
ok(query_until($node, 'app', "SELECT count(*) = 20 FROM reminder.message WHERE idempotency_key LIKE 'late-%' AND status = 'sent'", 't', 30),
	'messages of another channel are sent while the backlog drains');
my $max = $node->safe_psql('app', q{
	SELECT round(max(extract(epoch FROM sent_at - due_at))::numeric, 3)
	  FROM reminder.message WHERE idempotency_key LIKE 'late-%'});
cmp_ok($max, '<', 1.0, "... each within a second of falling due (slowest: $max s)");
cmp_ok($node->safe_psql('app', "SELECT count(*) FROM reminder.message WHERE channel = 'slow' AND status = 'sent'"),
	'<', 200, '... while the slow backlog was still draining');

# 3. A backlog on one channel drains without waiting for the next poll: the
# claims that leave a busy channel out claim it again as soon as its queue
# in the worker has room (a regression sent 100 messages per poll).
$node->safe_psql('app', "ALTER SYSTEM SET reminder.poll_interval = '60s'");
pause(1);
$node->safe_psql('app', q{
	SELECT reminder.send('bulk', '{}', 't', '{}', 'drain-' || g) FROM generate_series(1, 1000) g;
});
pause(0);
ok(query_until($node, 'app', "SELECT count(*) = 1000 FROM reminder.message WHERE idempotency_key LIKE 'drain-%' AND status = 'sent'", 't', 45),
	'1,000 messages on one channel are sent with a poll interval of 60 s, not 100 per poll');

# 4. An urgent message of a busy channel is claimed at once and starts on the
# channel's next free connection, ahead of the backlog the worker holds (a
# busy channel was left out of claims altogether until its queue emptied).
$node->safe_psql('app', "ALTER SYSTEM SET reminder.poll_interval = 200; SELECT pg_reload_conf()");
$node->safe_psql('app', q{
	SELECT reminder.send('slower', '{}', 't', '{}', 'backlog-' || g) FROM generate_series(1, 200) g;
});
ok(wait_until(sub { grep({ $_->{path} eq '/hang/2' } sink_requests($sink)) >= 12 }), 'the slower backlog is draining');
$node->safe_psql('app', q{
	SELECT reminder.send('slower', '{}', 't', '{}', 'first-' || g, priority => 'high') FROM generate_series(1, 3) g;
});
ok(query_until($node, 'app', "SELECT count(*) = 3 FROM reminder.message WHERE idempotency_key LIKE 'first-%' AND status = 'sent'", 't', 30),
	'high-priority messages of the busy channel are sent');
$max = $node->safe_psql('app', q{
	SELECT round(max(extract(epoch FROM sent_at - due_at))::numeric, 3)
	  FROM reminder.message WHERE idempotency_key LIKE 'first-%'});
cmp_ok($max, '<', 6.0, "... each within two 2-second requests of falling due (slowest: $max s), not after the held backlog");
cmp_ok($node->safe_psql('app', "SELECT count(*) FROM reminder.message WHERE channel = 'slower' AND status = 'sent'"),
	'<', 120, '... while the backlog was still draining');

$node->stop('immediate');
stop_sink($sink);
done_testing();
