# At-least-once: the worker SIGKILLed in the middle of 10,000 sends, then
# the postmaster stopped in immediate mode mid-run.  Afterwards every
# message is sent, none is lost, and the few sent twice were in flight and
# carried the same Idempotency-Key both times.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;

use ReminderTest;

my $node = start_node('crash', conf => "restart_after_crash = on\nreminder.lease_timeout = 10\n");
my $sink = start_sink();
create_db($node, 'app');
$node->safe_psql('app', qq{
	SELECT reminder.create_channel('hook', 'webhook', '{"url": "$sink->{url}/hook", "retry_delay": "0.2"}');
});

sub count_requests
{
	open(my $fh, '<', $sink->{log}) or die;
	my $n = 0;
	$n++ while <$fh>;
	close $fh;
	return $n;
}

# Every key sent at least once, and what was sent more than once
sub check_delivery
{
	my ($prefix, $n, $what) = @_;
	my %seen;
	for my $r (sink_requests($sink))
	{
		my $key = $r->{headers}{'Idempotency-Key'};
		next unless $key =~ /^\Q$prefix\E-\d+$/;
		push @{ $seen{$key} }, $r->{body};
	}
	my @missing = grep { !$seen{"$prefix-$_"} } 1 .. $n;
	is(scalar(@missing), 0, "$what: every one of the $n messages reached the sink");
	my @dups = grep { @{ $seen{$_} } > 1 } keys %seen;
	my $max = 2 * 64;    # in flight (max_concurrent) plus finished, not yet recorded
	cmp_ok(scalar(@dups), '<=', $max, "$what: " . scalar(@dups) . " sent twice, at most the messages in flight");
	ok(!grep({ my $b = $seen{$_}; grep { $_ ne $b->[0] } @$b } @dups),
		"$what: a duplicate carries the same key and body");
	is($node->safe_psql('app', "SELECT count(*) FROM reminder.message WHERE idempotency_key LIKE '$prefix-%' AND status <> 'sent'"),
		'0', "$what: all $n marked sent");
}

# 1. the worker killed mid-run: the postmaster restarts everything
$node->safe_psql('app', q{
	SELECT reminder.send('hook', '{}', 't', jsonb_build_object('n', g), 'kill-' || g)
	FROM generate_series(1, 10000) g;
});
ok(wait_until(sub { count_requests() >= 2000 }, 120), 'delivery under way');
my $pid = worker_pid($node, 'app');
ok(kill('KILL', $pid), "worker $pid killed");
my $at_kill = count_requests();
ok($at_kill < 10000, "killed mid-run, after $at_kill requests");
ok($node->poll_query_until('app', "SELECT count(*) = 10000 FROM reminder.message WHERE idempotency_key LIKE 'kill-%' AND status = 'sent'"),
	'after the crash and the lease, all 10,000 are sent');
check_delivery('kill', 10000, 'worker killed');
ok($node->log_contains(qr/reminder worker.*was terminated by signal 9/), 'the server log shows the kill');

# 2. immediate stop and start of the postmaster mid-run
$node->safe_psql('app', q{
	SELECT reminder.send('hook', '{}', 't', jsonb_build_object('n', g), 'stop-' || g)
	FROM generate_series(1, 5000) g;
});
my $before = count_requests();
ok(wait_until(sub { count_requests() >= $before + 1000 }, 120), 'second run under way');
$node->stop('immediate');
$node->start;
ok($node->poll_query_until('app', "SELECT count(*) = 5000 FROM reminder.message WHERE idempotency_key LIKE 'stop-%' AND status = 'sent'"),
	'after an immediate restart, all 5,000 are sent');
check_delivery('stop', 5000, 'immediate restart');

stop_sink($sink);
$node->stop;
done_testing();
