# Several senders per database (reminder.workers_per_database = 4): they
# share the outbox (every message sent exactly once while they are
# healthy), a channel's rate limit, the connections allowed per host and
# the survey throttle; a sender that dies loses nothing; a reload grows or
# shrinks their number.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

use ReminderTest;

my $node = start_node('senders', conf => "reminder.workers_per_database = 4\nrestart_after_crash = on\nreminder.batch_size = 25\n");
my $sink = start_sink();
create_db($node, 'app');
my $url = $sink->{url};
$node->safe_psql('app', qq{
	SELECT reminder.create_channel('hook', 'webhook', '{"url": "$url/hook", "retry_delay": "0.2"}');
	SELECT reminder.create_channel('paced', 'webhook', '{"url": "$url/paced", "rate_limit": 20}');
	SELECT reminder.create_channel('slow', 'webhook', '{"url": "$url/hang/1", "timeout": "5"}');
	SELECT reminder.create_channel('log', 'log');
});

sub senders
{
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'reminder worker' AND datname = 'app'");
}

sub sender_pids
{
	return split /\n/, $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'reminder worker' AND datname = 'app' ORDER BY pid");
}

# requests the sink got, by Idempotency-Key, of keys with this prefix
sub by_key
{
	my ($prefix) = @_;
	my %seen;
	for my $r (sink_requests($sink))
	{
		my $key = $r->{headers}{'Idempotency-Key'} // next;
		push @{ $seen{$key} }, $r if $key =~ /^\Q$prefix\E-\d+$/;
	}
	return %seen;
}

sub all_sent
{
	my ($prefix, $n, $timeout) = @_;
	return query_until($node, 'app',
		"SELECT count(*) = $n FROM reminder.message WHERE idempotency_key LIKE '$prefix-%' AND status = 'sent'",
		't', $timeout // 120);
}

ok(wait_until(sub { senders() == 4 }), 'four senders serve the database');
is($node->safe_psql('app', "SELECT string_agg(sender::text, ',' ORDER BY sender) FROM reminder.worker_status() WHERE database = 'app'"),
	'1,2,3,4', 'worker_status() lists all four, senders 1 to 4');

# (a) 2,000 messages queued at once: each reaches the sink exactly once
# and has one attempt, and every sender took its share.
$node->safe_psql('app', "ALTER SYSTEM SET reminder.enabled = off; SELECT pg_reload_conf()");
ok(query_until($node, 'app', "SELECT count(*) FILTER (WHERE state = 'disabled') FROM reminder.worker_status() WHERE database = 'app'", '4'),
	'senders paused');
$node->safe_psql('app', q{
	SELECT reminder.send('hook', '{}', 't', jsonb_build_object('n', g), 'once-' || g) FROM generate_series(1, 2000) g;
});
$node->safe_psql('app', "ALTER SYSTEM SET reminder.enabled = on; SELECT pg_reload_conf()");
ok(all_sent('once', 2000), 'all 2,000 are sent');
my %seen = by_key('once');
is(scalar(keys %seen), 2000, 'the sink got all 2,000 keys');
is(scalar(grep { @{ $seen{$_} } != 1 } keys %seen), 0, '... each exactly once');
is($node->safe_psql('app', q{
	SELECT count(*) || ' ' || count(DISTINCT a.message_id) || ' ' || count(*) FILTER (WHERE a.outcome = 'sent')
	  FROM reminder.attempt a JOIN reminder.message m ON m.id = a.message_id WHERE m.idempotency_key LIKE 'once-%'}),
	'2000 2000 2000', 'one attempt row per message, all sent');
ok(query_until($node, 'app', "SELECT sum(sent) >= 2000 FROM reminder.worker_status() WHERE database = 'app'"),
	'the senders count them');
my $shares = $node->safe_psql('app',
	"SELECT string_agg(sent::text, ' ' ORDER BY sent) FROM reminder.worker_status() WHERE database = 'app'");
note("messages sent by each sender: $shares");
is($node->safe_psql('app', "SELECT count(*) FROM reminder.worker_status() WHERE database = 'app' AND sent > 0"),
	'4', "all four senders did some of the work ($shares)");

# (b) A channel limited to 20/s, 200 messages: the four senders together
# keep the limit.  Tokens are taken when a message is claimed; it reaches
# the sink a few milliseconds later, so a window may also see the bucket
# (2) and a message or two whose claim-to-arrival time was shorter than
# that of one claimed before it.
$node->safe_psql('app', q{
	SELECT reminder.send('paced', '{}', 't', '{}', 'paced-' || g) FROM generate_series(1, 200) g;
});
ok(all_sent('paced', 200, 60), 'all 200 rate-limited messages are sent');
my %paced = by_key('paced');
is(scalar(grep { @{ $paced{$_} } != 1 } keys %paced) + (200 - scalar(keys %paced)), 0,
	'... each exactly once');
my @t = sort { $a <=> $b } map { $_->[0]{t} } values %paced;
my $worst = 0;
for my $i (0 .. $#t)
{
	my $j = $i;
	$j++ while $j + 1 <= $#t && $t[ $j + 1 ] < $t[$i] + 1.0;
	$worst = $j - $i + 1 if $j - $i + 1 > $worst;
}
my $span = $t[-1] - $t[0];
cmp_ok($worst, '<=', 20 + 2 + 1, "at most 20/s + the bucket in any 1-second window (busiest: $worst)");
cmp_ok($span, '>=', 9.0, sprintf('200 at 20/s take about 10 s (%.1f s)', $span));

# (c) Transfers in flight per host are counted for all senders: a receiver
# that takes a second per request sees at most reminder.max_host_connections
# (16) at once, not 16 per sender; leases of those waiting are renewed, so
# none is claimed again by a sibling (reminder.lease_timeout is 10 s, the
# backlog takes about 6).
$node->safe_psql('app', q{
	SELECT reminder.send('slow', '{}', 't', '{}', 'slow-' || g) FROM generate_series(1, 96) g;
});
ok(all_sent('slow', 96, 60), 'all 96 slow messages are sent');
my %slow = by_key('slow');
is(scalar(grep { @{ $slow{$_} } != 1 } keys %slow) + (96 - scalar(keys %slow)), 0, '... each exactly once');
@t = sort { $a <=> $b } map { $_->[0]{t} } values %slow;
$worst = 0;
for my $i (0 .. $#t)
{
	my $j = $i;
	$j++ while $j + 1 <= $#t && $t[ $j + 1 ] < $t[$i] + 0.9;
	$worst = $j - $i + 1 if $j - $i + 1 > $worst;
}
cmp_ok($worst, '<=', 16, "at most 16 requests under way at the slow receiver at once (busiest: $worst)");

# (d) The survey throttle holds across senders: 40 surveys to one person
# fall due while the senders are paused; resumed together, each claims one
# at a time, and a slow template (a nested loop over the row) keeps each
# claim open after its throttle check, so that the checks overlap; one
# survey goes out.
$node->safe_psql('app', "ALTER SYSTEM SET reminder.batch_size = 1; ALTER SYSTEM SET reminder.enabled = off; SELECT pg_reload_conf()");
ok(query_until($node, 'app', "SELECT count(*) FILTER (WHERE state = 'disabled') FROM reminder.worker_status() WHERE database = 'app'", '4'),
	'senders paused');
$node->safe_psql('app', q{
	CREATE TABLE job (id int PRIMARY KEY, status text NOT NULL, email text NOT NULL, a jsonb);
	SELECT reminder.create_template('slow', '{{#row.a}}{{#row.a}}{{/row.a}}{{/row.a}}done');
	SELECT reminder.watch('job', 'survey', name => 'nps', column_name => 'status', changes_to => '{done}',
		channel => 'log', template => 'slow', recipients => '{"to": {"email": {"expr": "email"}}}');
	INSERT INTO job SELECT g, 'done', 'ada@example.com', (SELECT jsonb_agg(i) FROM generate_series(1, 1500) i)
	  FROM generate_series(1, 40) g;
});
ok(query_until($node, 'app', q{
	SELECT count(*) = 40 AND bool_and(m.due_at <= now())
	  FROM reminder.message m JOIN reminder.rule r ON r.id = m.rule_id WHERE r.name = 'nps'}),
	'40 surveys due');
$node->safe_psql('app', "ALTER SYSTEM SET reminder.enabled = on; SELECT pg_reload_conf()");
ok($node->poll_query_until('app', q{
	SELECT count(*) FILTER (WHERE status IN ('scheduled', 'sending', 'retrying')) = 0
	  FROM reminder.message m JOIN reminder.rule r ON r.id = m.rule_id WHERE r.name = 'nps'}),
	'the surveys are decided');
is($node->safe_psql('app', q{
	SELECT string_agg(status || ' ' || n, ', ' ORDER BY status) FROM (
	  SELECT status, count(*) AS n FROM reminder.message m JOIN reminder.rule r ON r.id = m.rule_id
	   WHERE r.name = 'nps' GROUP BY status) s}),
	'sent 1, suppressed 39', 'forty surveys to one person through four senders: one goes out');
$node->safe_psql('app', "ALTER SYSTEM SET reminder.batch_size = 25; SELECT pg_reload_conf()");

# (e) One sender ends (pg_terminate_backend) in the middle of 3,000 sends:
# it finishes or abandons its transfers and gives back what it had not
# started; the others go on; the launcher starts it again.  Nothing is
# lost; a message is sent twice only if it was in flight when the sender
# left (at-least-once: the receiver drops the copy by Idempotency-Key).
sub check_delivery
{
	my ($prefix, $n, $what, $max_dups) = @_;
	my %k = by_key($prefix);
	my @missing = grep { !$k{"$prefix-$_"} } 1 .. $n;
	is(scalar(@missing), 0, "$what: every one of the $n messages reached the sink");
	my @dups = grep { @{ $k{$_} } > 1 } keys %k;
	cmp_ok(scalar(@dups), '<=', $max_dups, "$what: " . scalar(@dups) . " sent twice, at most what was in flight");
	ok(!grep({ my $b = $k{$_}; grep { $_->{body} ne $b->[0]{body} } @$b } @dups),
		"$what: a duplicate carries the same key and body");
}

sub requests { return scalar(sink_requests($sink)); }

$node->safe_psql('app', q{
	SELECT reminder.send('hook', '{}', 't', jsonb_build_object('n', g), 'term-' || g) FROM generate_series(1, 3000) g;
});
my $base = requests();
ok(wait_until(sub { requests() >= $base + 300 }, 60), 'delivery under way');
my ($victim) = sender_pids();
is($node->safe_psql('postgres', "SELECT pg_terminate_backend($victim)"), 't', "sender $victim terminated");
ok(all_sent('term', 3000), 'all 3,000 are sent');
check_delivery('term', 3000, 'one sender terminated', 64);
ok(wait_until(sub { senders() == 4 && !grep { $_ == $victim } sender_pids() }), 'the launcher started a fourth sender again');

# (f) One sender killed (SIGKILL): the postmaster restarts every process;
# messages the dead senders held are claimed again after their lease.
$node->safe_psql('app', q{
	SELECT reminder.send('hook', '{}', 't', jsonb_build_object('n', g), 'kill-' || g) FROM generate_series(1, 3000) g;
});
$base = requests();
ok(wait_until(sub { requests() >= $base + 300 }, 60), 'delivery under way');
($victim) = sender_pids();
ok(kill('KILL', $victim), "sender $victim killed");
ok(all_sent('kill', 3000, 180), 'after the crash and the lease, all 3,000 are sent');
check_delivery('kill', 3000, 'one sender killed', 4 * 2 * 64);
ok(wait_until(sub { senders() == 4 }), 'four senders again after the restart');

# (g) A reload changes the number of senders; messages queued meanwhile
# are all sent, none twice.
$node->safe_psql('app', q{
	SELECT reminder.send('hook', '{}', 't', jsonb_build_object('n', g), 'reload-' || g) FROM generate_series(1, 1000) g;
});
$node->safe_psql('app', "ALTER SYSTEM SET reminder.workers_per_database = 2; SELECT pg_reload_conf()");
ok(wait_until(sub { senders() == 2 }), 'workers_per_database 4 -> 2: two senders leave');
$node->safe_psql('app', "ALTER SYSTEM SET reminder.workers_per_database = 6; SELECT pg_reload_conf()");
ok(wait_until(sub { senders() == 6 }), 'workers_per_database 2 -> 6: four more start');
is($node->safe_psql('app', "SELECT string_agg(sender::text, ',' ORDER BY sender) FROM reminder.worker_status() WHERE database = 'app'"),
	'1,2,3,4,5,6', 'worker_status() lists six');
ok(all_sent('reload', 1000), 'all 1,000 queued across the reloads are sent');
%seen = by_key('reload');
is(scalar(grep { @{ $seen{$_} } != 1 } keys %seen) + (1000 - scalar(keys %seen)), 0,
	'... each exactly once: a sender asked to leave gives back what it had not started');

stop_sink($sink);
$node->stop;
done_testing();
