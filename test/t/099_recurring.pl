# A recurring rule with the worker: a task is reminded every 4 seconds
# (FREQ=MINUTELY;BYSECOND=0,4,...) through a real webhook; the worker
# delivers consecutive occurrences, each keyed by its time, scheduling the
# next one as it takes one, so exactly one is pending at a time; each is
# rendered with the row as it is when sent; marking the task done cancels
# the pending one and nothing more is sent.  Missed occurrences (the worker
# disabled for a while) are not sent late: the series goes on from now.
# An occurrence due but not taken yet keeps its place when the row is
# written, unless the series moved.  An opted-out recipient's occurrences
# are suppressed one by one.
use strict;
use warnings;

use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);

use ReminderTest;

my $node = start_node('recurring');
my $sink = start_sink();
create_db($node, 'app');

my $every4 = 'FREQ=MINUTELY;BYSECOND=' . join(',', map { $_ * 4 } 0 .. 14);
my $rule_id = $node->safe_psql('app', qq{
	SELECT reminder.create_channel('hook', 'webhook', jsonb_build_object('url', '$sink->{url}/recur'));
	SELECT reminder.create_template('nag', '{"text": "Still open: {{row.title}}"}');
	CREATE TABLE task (id int PRIMARY KEY, title text NOT NULL, starts_at timestamptz NOT NULL,
	                   done boolean NOT NULL DEFAULT false);
	SELECT reminder.watch('task', 'recurring', name => 'task_nag', column_name => 'starts_at',
		rrule => '$every4', time_zone => 'Europe/Warsaw', stop_condition => 'done',
		channel => 'hook', template => 'nag', recipients => '{"role": "assignee"}');
});
$rule_id =~ s/.*\n//s;

$node->safe_psql('app', q{INSERT INTO task VALUES (1, 'Report', now(), false)});

# three consecutive occurrences delivered
ok(wait_until(sub { scalar(grep { $_->{path} eq '/recur' } sink_requests($sink)) >= 3 }, 60),
	'the worker delivers three occurrences');
$node->safe_psql('app', q{UPDATE task SET title = 'Quarterly report'});
ok(wait_until(sub { scalar(grep { $_->{path} eq '/recur' } sink_requests($sink)) >= 4 }, 30),
	'and a fourth after the row changed');

my @reqs = grep { $_->{path} eq '/recur' } sink_requests($sink);
my @keys = map { $_->{headers}{'Idempotency-Key'} } @reqs;
like($keys[0], qr/^rule:$rule_id:1:0:0:\d{8}T\d{6}Z$/, 'each carries its occurrence in its key');
my @secs = map { /T(\d\d)(\d\d)(\d\d)Z$/ ? $1 * 3600 + $2 * 60 + $3 : -1 } @keys;
my $steps_ok = 1;
for my $i (1 .. $#secs)
{
	my $d = ($secs[$i] - $secs[ $i - 1 ] + 86400) % 86400;
	$steps_ok = 0 unless $d > 0 && $d % 4 == 0;
}
ok($steps_ok, 'occurrences in order, on the 4-second grid: ' . join(' ', @secs));
my %distinct = map { $_ => 1 } @keys;
is(scalar(keys %distinct), scalar(@keys), 'no occurrence sent twice');
like($reqs[0]{body}, qr/Still open: Report/, 'rendered with the row');
like($reqs[-1]{body}, qr/Still open: Quarterly report/, 'as it is when sent');
is($node->safe_psql('app', q{
	SELECT count(*) FROM reminder.message m
	 WHERE rule_id IS NOT NULL AND status = 'sent' AND sent_at < due_at}), '0',
	'none went out before its time');
is($node->safe_psql('app', q{
	SELECT count(*) FROM reminder.message WHERE rule_id IS NOT NULL AND status IN ('scheduled', 'retrying', 'sending')}),
	'1', 'one occurrence ahead at a time');

# done: the pending occurrence is cancelled (or, if the worker was taking
# the current one at that moment, the next is suppressed by the stop
# condition when it falls due); nothing more is sent
$node->safe_psql('app', q{UPDATE task SET done = true});
ok(query_until($node, 'app', q{
	SELECT count(*) = 0 FROM reminder.message WHERE status IN ('scheduled', 'retrying', 'sending')}, 't', 15),
	'marked done: nothing pending');
my $sent = $node->safe_psql('app', q{SELECT count(*) FROM reminder.message WHERE status = 'sent'});
sleep(9);
is($node->safe_psql('app', q{SELECT count(*) FROM reminder.message WHERE status = 'sent'}), $sent,
	'no occurrence sent for two periods');
is($node->safe_psql('app', q{
	SELECT count(*) FROM reminder.message WHERE status NOT IN ('sent', 'cancelled', 'suppressed')}),
	'0', 'the one pending was cancelled, none scheduled after it');
is(scalar(grep { $_->{path} eq '/recur' } sink_requests($sink)), $sent, 'the sink got nothing more');

# missed occurrences are not sent: with the worker paused, the occurrence
# pending falls behind; it goes out late when the worker is back, and the
# next is the first after that, not the ones missed meanwhile
$node->safe_psql('app', q{ALTER SYSTEM SET reminder.enabled = off; SELECT pg_reload_conf()});
sleep(1);
$node->safe_psql('app', q{UPDATE task SET done = false});

# meanwhile: an occurrence whose time has come but that the worker has not
# taken yet keeps its place when the row is written without moving the
# series, whether the rule's expressions are immutable (visit_d) or not
# (visit_nd, which calls now()); moving the series cancels it
$node->safe_psql('app', q{
	SELECT reminder.create_channel('journal', 'log');
	CREATE TABLE visit (id int PRIMARY KEY, starts_at timestamptz NOT NULL, note text);
	SELECT reminder.watch('visit', 'recurring', name => 'visit_d', column_name => 'starts_at',
		rrule => 'FREQ=DAILY', condition => 'note IS NOT NULL',
		channel => 'journal', template => 'nag', recipients => '{"role": "visitor"}');
	SELECT reminder.watch('visit', 'recurring', name => 'visit_nd', column_name => 'starts_at',
		rrule => 'FREQ=DAILY', condition => 'note IS NOT NULL AND starts_at < now() + interval ''1 year''',
		channel => 'journal', template => 'nag', recipients => '{"role": "visitor"}');
	INSERT INTO visit VALUES (1, now() + interval '2 seconds', 'a');
});
sleep(3);
my $due_now = q{
	SELECT string_agg(r.name || ' ' || m.status, ', ' ORDER BY r.name)
	  FROM reminder.message m JOIN reminder.rule r ON r.id = m.rule_id JOIN visit v ON true
	 WHERE r.name LIKE 'visit%' AND m.due_at = date_trunc('second', v.starts_at)};
$node->safe_psql('app', q{UPDATE visit SET note = 'b'});
is($node->safe_psql('app', $due_now), 'visit_d scheduled, visit_nd scheduled',
	'an occurrence due but not yet taken is kept by a write that leaves the series as it was');
$node->safe_psql('app', q{UPDATE visit SET starts_at = starts_at + interval '1 hour'});
is($node->safe_psql('app', q{
	SELECT string_agg(r.name || ' ' || m.status || ' ' || m.last_error, ', ' ORDER BY r.name)
	  FROM reminder.message m JOIN reminder.rule r ON r.id = m.rule_id JOIN visit v ON true
	 WHERE r.name LIKE 'visit%' AND m.due_at = date_trunc('second', v.starts_at - interval '1 hour')}),
	'visit_d cancelled rule: row changed, visit_nd cancelled rule: row changed',
	'and cancelled when the series moves');
$node->safe_psql('app', q{DELETE FROM visit});

sleep(7);
$node->safe_psql('app', q{ALTER SYSTEM RESET reminder.enabled; SELECT pg_reload_conf()});
ok(query_until($node, 'app', q{
	SELECT count(*) = 1 FROM reminder.message WHERE status = 'sent' AND sent_at > due_at + interval '5 seconds'},
		't', 30),
	'the occurrence that fell behind is sent late, once');
ok(query_until($node, 'app', qq{
	SELECT min(n.due_at) > l.due_at + interval '8 seconds'
	  FROM reminder.message l JOIN reminder.message n ON n.rule_id = l.rule_id AND n.due_at > l.due_at
	 WHERE l.rule_id = $rule_id AND l.status = 'sent' AND l.sent_at > l.due_at + interval '5 seconds'
	 GROUP BY l.due_at}, 't', 30),
	'the next one comes after it was sent: the occurrences missed meanwhile are skipped');

$node->safe_psql('app', q{DELETE FROM task});
is($node->safe_psql('app', q{
	SELECT count(*) FROM reminder.message WHERE status IN ('scheduled', 'retrying')}),
	'0', 'a deleted row leaves nothing pending');

# an opted-out recipient's occurrences are suppressed, and the series goes
# on (opting in again would let the next one through)
$node->safe_psql('app', qq{
	SELECT reminder.watch('task', 'recurring', name => 'task_log', column_name => 'starts_at',
		rrule => '$every4', time_zone => 'Europe/Warsaw', stop_condition => 'done',
		channel => 'journal', template => 'nag', recipients => '{"to": {"email": "ada\@example.com"}}');
	SELECT reminder.opt_out('{"email": "ada\@example.com"}', category => 'task_log');
	INSERT INTO task VALUES (2, 'Invoice', now(), false);
});
ok(query_until($node, 'app', q{
	SELECT count(*) >= 2 FROM reminder.message m JOIN reminder.rule r ON r.id = m.rule_id
	 WHERE r.name = 'task_log' AND m.status = 'suppressed'}, 't', 30),
	'opted out: occurrence after occurrence is suppressed, the series goes on');
is($node->safe_psql('app', q{
	SELECT count(*) FROM reminder.message m JOIN reminder.rule r ON r.id = m.rule_id
	 WHERE r.name = 'task_log' AND m.status = 'sent'}), '0', 'and none is sent');

stop_sink($sink);
$node->stop;
done_testing();
