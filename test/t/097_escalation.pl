# Escalation on a missing event, with the worker: the client is asked to
# confirm at once; the operator is told 6 seconds later unless the client
# confirmed.  Delivered through a log channel, read back from reminder.log:
#  - no event: the escalation goes out when due;
#  - a "confirmed" event recorded through the client's link before then:
#    the escalation is cancelled at once and never goes out;
#  - an event that reached reminder.event some other way: the worker
#    suppresses the escalation when it falls due, saying why;
#  - an event after the escalation went out changes nothing.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;

use ReminderTest;

my $node = start_node('escalation');
create_db($node, 'app');
$node->safe_psql('app', q{
	SELECT reminder.create_channel('desk', 'log');
	SELECT reminder.create_template('ask', 'Please confirm {{row.title}}');
	SELECT reminder.create_template('escalate', '{{row.title}} is not confirmed');
	CREATE TABLE booking (id int PRIMARY KEY, title text NOT NULL, asked_at timestamptz NOT NULL);
	SELECT reminder.watch('booking', 'after', name => 'booking', column_name => 'asked_at', channel => 'desk',
		recipients => '[
		  {"role": "client", "template": "ask", "offsets": ["0"]},
		  {"role": "operator", "template": "escalate", "offsets": ["6 seconds"],
		   "unless": {"event": "confirmed", "role": "client"}}
		]');
	INSERT INTO booking VALUES (1, 'One', now()), (2, 'Two', now()), (3, 'Three', now()), (4, 'Four', now());
});

sub message
{
	my ($row, $role) = @_;
	return $node->safe_psql('app', qq{
		SELECT id FROM reminder.message WHERE source_key = '$row' AND recipient->>'role' = '$role'});
}

ok($node->poll_query_until('app', q{
	SELECT count(*) = 4 FROM reminder.message WHERE recipient->>'role' = 'client' AND status = 'sent'}),
	'the four requests to confirm go out at once');

# Row 2: confirmed through the link; row 3: an event recorded some other
# way (as an import of provider data could).
my $token = $node->safe_psql('app', 'SELECT reminder.link_token(' . message(2, 'client') . q{, 'confirm')});
$node->safe_psql('app', qq{SELECT reminder.record_event('$token')});
$node->safe_psql('app', 'INSERT INTO reminder.event (message_id, kind, source) VALUES ('
	  . message(3, 'client') . q{, 'confirmed', 'import')});
is($node->safe_psql('app', 'SELECT status FROM reminder.message WHERE id = ' . message(2, 'operator')),
	'cancelled', 'the confirmation cancels the pending escalation at once');

ok($node->poll_query_until('app', q{
	SELECT count(*) = 4 FROM reminder.message
	 WHERE recipient->>'role' = 'operator' AND status IN ('sent', 'cancelled', 'suppressed')}),
	'the worker decides every escalation');
is($node->safe_psql('app', q{
	SELECT string_agg(m.source_key || ' ' || m.status || ': ' ||
	                  coalesce(l.body, regexp_replace(m.last_error, '[0-9]+$', 'N')), E'\n' ORDER BY m.source_key)
	  FROM reminder.message m LEFT JOIN reminder.log l ON l.message_id = m.id
	 WHERE m.recipient->>'role' = 'operator'}),
	join("\n",
		'1 sent: One is not confirmed',
		'2 cancelled: unless: "confirmed" event recorded on message N',
		'3 suppressed: unless: "confirmed" event recorded on message N',
		'4 sent: Four is not confirmed'),
	'only the unconfirmed bookings are escalated; the others say which event stopped them');
is($node->safe_psql('app', q{SELECT count(*) FROM reminder.log l JOIN reminder.message m ON m.id = l.message_id
	 WHERE m.recipient->>'role' = 'operator'}), '2', 'the log channel got two escalations, no more');

# A confirmation after the escalation went out changes nothing.
$token = $node->safe_psql('app', 'SELECT reminder.link_token(' . message(4, 'client') . q{, 'confirm')});
$node->safe_psql('app', qq{SELECT reminder.record_event('$token')});
is($node->safe_psql('app', 'SELECT status FROM reminder.message WHERE id = ' . message(4, 'operator')),
	'sent', 'a late confirmation leaves the escalation that went out as it is');

$node->stop;
done_testing();
