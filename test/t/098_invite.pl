# Calendar invites that follow the row, through a real SMTP server
# (aiosmtpd, test/servers/smtp_sink.py): every mail is read as a mail client would
# (Python's email package) and its calendars parsed by a real iCalendar
# parser (Debian's python3-icalendar, test/servers/ical_inspect.py).
#  - booking a meeting sends the invitation at once: METHOD:REQUEST,
#    SEQUENCE 0, a UID made from the rule and the row, the row's start,
#    end, summary and location, as text/calendar inside
#    multipart/alternative and as an invite.ics attachment;
#  - text the row holds is escaped, never read as iCalendar or mail
#    syntax: a summary with CR LF, "Bcc:" and "END:VEVENT" in it stays one
#    SUMMARY of one event, adds no header and no recipient; long values
#    are folded at 75 octets between whole UTF-8 characters, lines end
#    in CRLF;
#  - moving the meeting sends the update at once: same UID, SEQUENCE 1,
#    the new times; cancelling it (the rule's condition) sends
#    METHOD:CANCEL, STATUS:CANCELLED, SEQUENCE 2; deleting a row does the
#    same for its event;
#  - a reminder of the recipient carries the current event too;
#  - a write that leaves the event as it was sends nothing.
use strict;
use warnings;
use utf8;

use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;

use ChannelTest;
use ReminderTest;

my $node = start_node('invite');
my $smtp = start_smtp_sink();
create_db($node, 'app');
my $port = $smtp->{ports}{plain};

$node->safe_psql('app', qq{
	SET TimeZone = 'UTC';
	SELECT reminder.create_channel('mail', 'email',
		jsonb_build_object('url', 'smtp://127.0.0.1:$port', 'starttls', 'never', 'max_attempts', 1,
			'from', 'Office <office\@example.com>'));
	SELECT reminder.create_template('meeting', 'Meeting {{row.title}} ({{invite.method}})', 'Meeting');
	CREATE TABLE meeting (
		id int PRIMARY KEY, title text NOT NULL, starts_at timestamptz NOT NULL, ends_at timestamptz,
		room text, email text NOT NULL, cancelled boolean NOT NULL DEFAULT false, notes text);
	SELECT reminder.watch('meeting', 'before', name => 'meeting', column_name => 'starts_at',
		channel => 'mail', template => 'meeting', condition => 'NOT cancelled',
		recipients => '{"role": "client", "to": {"email": {"expr": "email"}}, "offsets": ["1 hour"],
		                "invite": {"summary": {"expr": "title"}, "end": "ends_at", "location": {"expr": "room"},
		                           "description": "Agenda:\\n1. Budget, costs; plan\\n2. Q&A",
		                           "organizer": "Office Team <office\@example.com>"}}');
});

# The mails to one address, in the order they came, with their calendars.
sub mails_to
{
	my ($to) = @_;
	my @r;
	for my $m (grep { $_->{rcpt_tos}[0] eq $to } smtp_messages($smtp))
	{
		my ($out, $err) = ('', '');
		IPC::Run::run([ '/usr/bin/python3', "$ENV{REMINDER_SRC}/test/servers/ical_inspect.py" ],
			'<', \$m->{data}, '>', \$out, '2>', \$err)
		  or die "ical_inspect.py failed: $err";
		my $i = JSON::PP->new->utf8->decode($out);
		$i->{rcpt_tos} = $m->{rcpt_tos};
		push @r, $i;
	}
	return @r;
}

sub wait_mails
{
	my ($to, $n) = @_;
	ok(wait_until(sub { scalar(mails_to($to)) >= $n }), "mail $n to $to arrives");
	return mails_to($to);
}

my $title = "Kickoff; budget, Q1 \\ review\r\nBcc: evil\@example.com\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nSUMMARY:forged";
my $room = 'Sala konferencyjna „Żółta”, piętro 3; wejście od ul. Łódzkiej, budynek B — ' x 2;
(my $title_sql = $title) =~ s/\\/\\\\/g;
$title_sql =~ s/\r/\\r/g;
$title_sql =~ s/\n/\\n/g;
$node->safe_psql('app', qq{
	INSERT INTO meeting VALUES (1, E'$title_sql', '2030-03-04 10:00+00', '2030-03-04 11:30+00', '$room', 'ada\@example.com')});

# ----------------------------------------------------------------------
# The invitation
# ----------------------------------------------------------------------
my @m = wait_mails('ada@example.com', 1);
my $mail = $m[0];
is_deeply($mail->{rcpt_tos}, ['ada@example.com'], 'the invitation goes to the attendee alone');
ok(!grep({ $_ eq 'bcc' } @{ $mail->{header_names} }), 'no Bcc header came from the summary');
is_deeply($mail->{defects}, [], 'the mail parses without defects');
is_deeply($mail->{structure},
	[ 'multipart/mixed', 'multipart/alternative', 'text/plain', 'text/calendar', 'application/ics' ],
	'multipart/mixed: the alternatives with text/calendar, and an attachment');
is(scalar @{ $mail->{calendars} }, 2, 'two copies of the calendar');
my ($inline, $file) = @{ $mail->{calendars} };
is($inline->{method_param}, 'REQUEST', 'text/calendar; method=REQUEST');
is($inline->{charset}, 'UTF-8', '... charset=UTF-8');
ok($file->{attachment} && $file->{filename} eq 'invite.ics', 'the attachment is invite.ics');
is($file->{raw}, $inline->{raw}, 'both hold the same calendar');
ok($inline->{crlf}, 'every line ends in CRLF');
cmp_ok($inline->{max_line_octets}, '<=', 75, 'no line is longer than 75 octets');
cmp_ok($inline->{folded_lines}, '>', 0, 'long values are folded');
is($inline->{method}, 'REQUEST', 'METHOD:REQUEST');
is($inline->{version}, '2.0', 'VERSION:2.0');
is_deeply($inline->{components}, [ 'VCALENDAR', 'VEVENT' ], 'one event, however the summary ends');
my $ev = $inline->{events}[0];
my $rule_id = $node->safe_psql('app', q{SELECT id FROM reminder.rule WHERE name = 'meeting'});
is($ev->{uid}, "rule-$rule_id-1\@example.com", 'the UID is made from the rule and the row key');
is($ev->{sequence}, 0, 'SEQUENCE:0');
is($ev->{dtstart}, '2030-03-04T10:00:00+00:00', 'DTSTART in UTC');
is($ev->{dtend}, '2030-03-04T11:30:00+00:00', 'DTEND in UTC');
(my $title_read = $title) =~ s/\r\n/\n/g;
is($ev->{summary}, $title_read, 'the summary reads back as written: CR LF, ";", "," and "\\" are text');
is($ev->{location}, $room, 'the location reads back, its UTF-8 intact across folds');
is($ev->{description}, "Agenda:\n1. Budget, costs; plan\n2. Q&A", 'the description keeps its lines');
is($ev->{status}, 'CONFIRMED', 'STATUS:CONFIRMED');
is($ev->{organizer}[0]{value}, 'mailto:office@example.com', 'ORGANIZER');
is($ev->{organizer}[0]{cn}, 'Office Team', '... with its name');
is($ev->{attendee}[0]{value}, 'mailto:ada@example.com', 'ATTENDEE is the recipient');
ok($ev->{dtstamp} =~ /\+00:00$/, 'DTSTAMP in UTC');

# A write that leaves the event as it was sends nothing.
$node->safe_psql('app', q{UPDATE meeting SET notes = 'bring slides' WHERE id = 1});
is($node->safe_psql('app', q{SELECT count(*) FROM reminder.message WHERE source_key = '1'}), '2',
	'an update of a column the rule does not read schedules nothing');

# ----------------------------------------------------------------------
# Moved, then cancelled
# ----------------------------------------------------------------------
$node->safe_psql('app', q{UPDATE meeting SET starts_at = starts_at + interval '1 day', ends_at = ends_at + interval '1 day' WHERE id = 1});
@m = wait_mails('ada@example.com', 2);
$ev = $m[1]{calendars}[0]{events}[0];
is($m[1]{calendars}[0]{method}, 'REQUEST', 'moving the meeting sends the update at once');
is($ev->{uid}, "rule-$rule_id-1\@example.com", '... for the same UID');
is($ev->{sequence}, 1, '... with SEQUENCE:1');
is($ev->{dtstart}, '2030-03-05T10:00:00+00:00', '... and the new start');
is($ev->{dtend}, '2030-03-05T11:30:00+00:00', '... and end');

$node->safe_psql('app', q{UPDATE meeting SET cancelled = true WHERE id = 1});
@m = wait_mails('ada@example.com', 3);
$ev = $m[2]{calendars}[0]{events}[0];
is($m[2]{calendars}[0]{method}, 'CANCEL', 'cancelling it sends METHOD:CANCEL');
is($m[2]{calendars}[0]{method_param}, 'CANCEL', '... as text/calendar; method=CANCEL');
is($ev->{status}, 'CANCELLED', '... STATUS:CANCELLED');
is($ev->{sequence}, 2, '... SEQUENCE:2');
is($ev->{uid}, "rule-$rule_id-1\@example.com", '... of the same UID');
is($ev->{dtstart}, '2030-03-05T10:00:00+00:00', '... naming the event as it was');
is($node->safe_psql('app', q{SELECT status FROM reminder.message WHERE idempotency_key LIKE '%:1:0:0'}),
	'cancelled', 'and the reminder is cancelled');

# ----------------------------------------------------------------------
# Deleted
# ----------------------------------------------------------------------
$node->safe_psql('app', q{
	INSERT INTO meeting VALUES (2, 'Review', '2030-03-06 09:00+00', NULL, NULL, 'bob@example.com')});
@m = wait_mails('bob@example.com', 1);
$ev = $m[0]{calendars}[0]{events}[0];
is($ev->{dtend}, '2030-03-06T10:00:00+00:00', 'without an end, the event lasts an hour');
is($ev->{location}, undef, 'and without a room, no LOCATION');
$node->safe_psql('app', q{DELETE FROM meeting WHERE id = 2});
@m = wait_mails('bob@example.com', 2);
is($m[1]{calendars}[0]{method}, 'CANCEL', 'deleting the row sends METHOD:CANCEL');
is($m[1]{calendars}[0]{events}[0]{sequence}, 1, '... SEQUENCE:1');
is($m[1]{calendars}[0]{events}[0]{uid}, "rule-$rule_id-2\@example.com", '... for its UID');

# ----------------------------------------------------------------------
# A reminder carries the event too
# ----------------------------------------------------------------------
$node->safe_psql('app', q{
	INSERT INTO meeting VALUES (3, 'Soon', date_trunc('second', now()) + interval '1 hour 4 seconds', NULL, NULL, 'cy@example.com')});
@m = wait_mails('cy@example.com', 2);
is_deeply([ map { $_->{calendars}[0]{method} } @m ], [ 'REQUEST', 'REQUEST' ],
	'the invitation and the reminder an hour before both carry the event');
is_deeply([ map { $_->{calendars}[0]{events}[0]{sequence} } @m ], [ 0, 0 ], '... at SEQUENCE:0');
is($m[1]{calendars}[0]{events}[0]{uid}, "rule-$rule_id-3\@example.com", '... with the same UID');
is($node->safe_psql('app', q{SELECT sent_sequence FROM reminder.invite WHERE source_key = '3'}), '0',
	'reminder.invite notes which sequence went out');

stop_server($smtp);
$node->stop;
done_testing();
