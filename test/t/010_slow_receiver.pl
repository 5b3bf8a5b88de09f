# A slow but healthy receiver must get every message exactly once, with no
# spurious timeouts: no more transfers start per host than the worker may
# open connections to it (libcurl would queue the rest with their timeout
# running), and the messages the worker holds - waiting for a connection,
# or in flight past reminder.lease_timeout - keep their leases, so that no
# pass claims them again while they are still on their way.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

use ReminderTest;

# The product's defaults: up to 64 transfers in flight, 16 connections per
# host, a 10 s timeout; but a lease of 10 s (ReminderTest's), so that the
# attempts are cut at 9 s and waiting messages outlive their first lease.
my $node = start_node('slow');
my $sink = start_sink();
create_db($node, 'app');
my $url = $sink->{url};

$node->safe_psql('app', qq{
	SELECT reminder.create_channel('slow', 'webhook',
		'{"url": "$url/hang/5", "retry_delay": "0.2", "max_attempts": 5}');
	SELECT reminder.create_channel('slower', 'webhook',
		'{"url": "$url/hang/7", "timeout": "9", "retry_delay": "0.2", "max_attempts": 5}');
});

# Most in flight at once, as the sink saw it (each request lasts $secs).
sub max_concurrency
{
	my ($secs, @reqs) = @_;
	my @t = sort { $a <=> $b } map { $_->{t} } @reqs;
	my $max = 0;
	for my $i (0 .. $#t)
	{
		my $n = grep { $_ >= $t[$i] - $secs + 0.05 && $_ <= $t[$i] } @t;
		$max = $n if $n > $max;
	}
	return $max;
}

sub check_exactly_once
{
	my ($path, $channel, $n, $secs, $what) = @_;
	my @reqs = grep { $_->{path} eq $path } sink_requests($sink);
	my %per_key;
	$per_key{ $_->{headers}{'Idempotency-Key'} }++ for @reqs;
	is(scalar(@reqs), $n, "$what: the receiver got $n requests");
	is(scalar(grep { $_ > 1 } values %per_key), 0, "$what: no message twice");
	is($node->safe_psql('app', qq{
		SELECT count(*) FILTER (WHERE a.outcome <> 'sent') || ' ' || count(*)
		  FROM reminder.attempt a JOIN reminder.message m ON m.id = a.message_id
		 WHERE m.channel = '$channel'}),
		"0 $n", "$what: one attempt each, no spurious timeout");
	cmp_ok(max_concurrency($secs, @reqs), '<=', 16, "$what: never more than 16 at once to one host");
}

# Issue 14's case: 200 messages of 5 s each through 16 connections, 65 s,
# most of them waiting for a connection longer than their 10 s lease
$node->safe_psql('app', q{
	SELECT reminder.send('slow', '{}', 't', jsonb_build_object('n', g), 'slow-' || g)
	  FROM generate_series(1, 200) g;
});
ok(query_until($node, 'app', "SELECT count(*) = 200 FROM reminder.message WHERE channel = 'slow' AND status = 'sent'", 't', 240),
	'200 messages to a receiver answering in 5 s are sent');
check_exactly_once('/hang/5', 'slow', 200, 5, 'waiting past the lease');

# 20 messages of 7 s each: the last four wait 7 s, then are in flight
# until 14 s, past their lease of 10 s
$node->safe_psql('app', q{
	SELECT reminder.send('slower', '{}', 't', jsonb_build_object('n', g), 'slower-' || g)
	  FROM generate_series(1, 20) g;
});
ok(query_until($node, 'app', "SELECT count(*) = 20 FROM reminder.message WHERE channel = 'slower' AND status = 'sent'", 't', 90),
	'20 messages to a slower receiver are sent');
check_exactly_once('/hang/7', 'slower', 20, 7, 'in flight past the lease');

# A destination the host policy denies fails for good, whatever happens in
# libcurl meanwhile: here the host's 16 connections are busy (opened
# before the policy changed), and the message for it must neither time out
# queued behind them nor be retried as if the receiver were slow.
$node->safe_psql('app', qq{
	SELECT reminder.create_channel('busy', 'webhook', '{"url": "$url/hang/3", "timeout": "5"}');
	SELECT reminder.create_channel('quick', 'webhook',
		'{"url": "$url/status/200", "timeout": "1", "retry_delay": "0.2", "max_attempts": 5}');
	SELECT reminder.send('busy', '{}', 't', '{}', 'busy-' || g) FROM generate_series(1, 16) g;
});
ok(wait_until(sub { scalar(grep { $_->{path} eq '/hang/3' } sink_requests($sink)) == 16 }),
	'16 transfers hold the host\'s connections');
$node->append_conf('postgresql.conf', "reminder.denied_hosts = '127.0.0.0/8'\n");
$node->reload;
sleep 1;
$node->safe_psql('app', "SELECT reminder.send('quick', '{}', 't', '{}', 'denied-1')");
ok(query_until($node, 'app', "SELECT status = 'failed' FROM reminder.message WHERE idempotency_key = 'denied-1'"),
	'a message to a host denied meanwhile fails');
is($node->safe_psql('app', q{
	SELECT string_agg(a.outcome, ',') FROM reminder.attempt a JOIN reminder.message m ON m.id = a.message_id
	 WHERE m.idempotency_key = 'denied-1'}), 'permanent', '... at its first attempt, as a permanent failure');
like($node->safe_psql('app', "SELECT last_error FROM reminder.message WHERE idempotency_key = 'denied-1'"),
	qr/127\.0\.0\.1.*denied by reminder\.denied_hosts/, '... saying that the policy denied it');
ok(query_until($node, 'app', "SELECT count(*) = 16 FROM reminder.message WHERE channel = 'busy' AND status = 'sent'"),
	'the transfers begun before the change finish');

is($node->safe_psql('app', "SELECT count(*) FROM reminder.message WHERE status = 'sending'"),
	'0', 'nothing left in flight');

$node->stop;
stop_sink($sink);
done_testing();
