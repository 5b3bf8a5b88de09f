# Header fields built from what users write - the subject, display names
# of From, Reply-To and To - are deliverable whatever their length: SMTP
# refuses lines over 998 characters ("500 Line too long"), so a word too
# long for a line goes as RFC 2047 encoded words, folded between whole
# characters.  Checked through aiosmtpd (test/servers/smtp_sink.py) and read back
# with Python's email package, as a mail client would; display names are
# decoded by Perl's Encode (MIME-Header), as Python 3.11 puts a space between
# adjacent encoded words of a display name, which RFC 2047 (6.2) says to
# ignore and mail clients join.
use strict;
use warnings;
use utf8;

use Encode qw(decode);
use PostgreSQL::Test::Utils;
use Test::More;

use ChannelTest;
use ReminderTest;

my $node = start_node('mail_headers');
my $smtp = start_smtp_sink();
create_db($node, 'app');
my $port = $smtp->{ports}{plain};

my $from_name = join(' ', ('Przypomnienia, Biuro Obsługi Klienta') x 20);    # quoted, non-ASCII, ~700 bytes
my $reply_name = 'R' x 900;                                                   # one ASCII word
my $domain = join('.', ('d' x 58) x 3) . '.example.com';    # addresses of 253 characters

$node->safe_psql('app', qq{
	SELECT reminder.create_channel('mail', 'email',
		jsonb_build_object('url', 'smtp://127.0.0.1:$port', 'starttls', 'never', 'max_attempts', 1,
			'from', '"$from_name" <noreply\@example.com>',
			'reply_to', '$reply_name <biuro\@example.com>'));
	SELECT reminder.create_template('subject', 'Body.', '{{subject}}');
});

my %subjects = (
	one_word => 'https://example.com/' . ('x' x 1980),
	long_words => join(' ', map { ('w' x 100) . $_ } 1 .. 12),
	spaces => 'Two  spaces, a ' . ('y' x 80) . '  and  more  ',
	mixed => 'Spotkanie ' . ('ż' x 600) . ' ' . ('z' x 1200),
	short => 'Reminder: meeting at 15:00',
);
my %names = (
	one_word => 'N' x 900,
	long_words => 'Łukasz ' . ('Ż' x 400),
	spaces => join(' ', ('Jan') x 240),
	mixed => 'Jan "Kowalski" \\ ' . ('k' x 500),
	short => 'Jan Kowalski',
);

my %addrs = map { $_ => ($_ eq 'short' ? 'jan@example.com' : substr($_ . ('a' x 64), 0, 64) . '@' . $domain) } keys %subjects;
for my $k (sort keys %subjects)
{
	$node->safe_psql('app', qq{
		SELECT reminder.send('mail', jsonb_build_object('email', '$addrs{$k}', 'name', \$n\$$names{$k}\$n\$),
			'subject', jsonb_build_object('subject', \$s\$$subjects{$k}\$s\$), 'h-$k');
	});
}
ok(query_until($node, 'app',
		"SELECT count(*) = " . scalar(keys %subjects) . " FROM reminder.message WHERE idempotency_key LIKE 'h-%' AND status IN ('sent', 'failed')"),
	'every message settled');

# A header field of a raw mail, unfolded and decoded (RFC 2047).
sub decoded_field
{
	my ($mail, $name) = @_;
	my $head = join("\n", @{ $mail->{raw_header_lines} }) =~ s/\n[ \t]/ /gr;
	my ($value) = $head =~ /^\Q$name\E: (.*)$/mi;
	return defined $value ? decode('MIME-Header', $value) : undef;
}

for my $k (sort keys %subjects)
{
	my $row = $node->safe_psql('app', "SELECT status || ' ' || coalesce(last_error, '') FROM reminder.message WHERE idempotency_key = 'h-$k'");
	is($row, 'sent ', "$k: sent");
	my ($m) = grep { ($_->{data} =~ /Message-ID: <h-$k\@/) } smtp_messages($smtp);
	SKIP:
	{
		skip "$k: not received", 8 unless $m;
		my $mail = inspect_mail($m->{data});
		is_deeply($mail->{defects}, [], "$k: the parser finds no defects");
		is($mail->{headers}{subject}[0], $subjects{$k}, "$k: the subject reads as written");
		is(decoded_field($mail, 'To'), "$names{$k} <$addrs{$k}>", "$k: To reads as written");
		is($mail->{addresses}{to}[0]{address}, $addrs{$k}, "$k: ... and its address parses");
		is(decoded_field($mail, 'From'), "$from_name <noreply\@example.com>", "$k: From reads as written");
		is(decoded_field($mail, 'Reply-To'), "$reply_name <biuro\@example.com>", "$k: Reply-To reads as written");
		is_deeply([ grep { length($_) > 78 && !/^Content-Type: multipart/ && !/^ <\Q$addrs{$k}\E>$/ }
				@{ $mail->{raw_header_lines} } ], [],
			"$k: every header line folded within 78 characters (but an address of 253)");
		is_deeply([ grep { length($_) > 998 } @{ $mail->{raw_header_lines} } ], [], "$k: ... and none over 998");
	}
}

my ($short) = grep { ($_->{data} =~ /Message-ID: <h-short\@/) } smtp_messages($smtp);
like($short->{data}, qr/^Subject: Reminder: meeting at 15:00\r$/m, 'a short ASCII subject stays plain text');
like($short->{data}, qr/^To: Jan Kowalski <jan\@example\.com>\r$/m, '... and a plain name too');

stop_server($smtp);
$node->stop;
done_testing();
