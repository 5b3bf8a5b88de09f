# Inbound replies end to end: the worker delivers a visit reminder through
# the Twilio stand-in (test/servers/provider_sink.py); the client's "TAK" comes back
# as Twilio's inbound webhook would bring it (a form, signed with
# X-Twilio-Signature, computed here with Perl's Digest::SHA, not the
# extension's code) and confirms it, so the rule's stop condition
# ("reminder.has_event(...)") suppresses the follow-up when it falls due;
# then "STOP" opts the number out and the next message is suppressed
# while another number still gets its own.
use strict;
use warnings;
use utf8;

use Digest::SHA qw(hmac_sha1_base64);
use Encode;
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;

use ChannelTest;
use ReminderTest;

my $node = start_node('inbound');
my $gw = start_provider_sink();
create_db($node, 'app');
my $url = $gw->{url};
my $inbound_url = 'https://app.example.com/twilio/sms?clinic=1';
my $client = '+48601234567';

$node->safe_psql('app', qq{
	SELECT reminder.create_channel('tw', 'sms',
		'{"provider": "twilio", "account_sid": "ACtest", "from": "+48600000000", "base_url": "$url",
		  "inbound_url": "$inbound_url"}',
		'{"auth_token": "twilio-token"}');
	SELECT reminder.create_template('visit', 'Wizyta {{row.id}} jutro. Odpowiedz TAK lub NIE.');
	CREATE TABLE visits (id int PRIMARY KEY, phone text NOT NULL, starts_at timestamptz NOT NULL);
	SELECT reminder.watch('visits', 'before', name => 'visit_sms', column_name => 'starts_at',
		offsets => '{24 hours, 1 hour}', channel => 'tw', template => 'visit',
		recipients => '{"to": {"phone": {"expr": "phone"}}}',
		stop_condition => 'reminder.has_event(''visit_sms'', id::text)');
	INSERT INTO visits VALUES (1, '$client', now() + interval '24 hours 1 second');
});

my ($first, $second) = split /\n/, $node->safe_psql('app',
	"SELECT id FROM reminder.message WHERE rule_id IS NOT NULL ORDER BY due_at");
ok(query_until($node, 'app', "SELECT status FROM reminder.message WHERE id = $first", 'sent'),
	'the worker sends the day-before reminder');
my @to_client = grep { $_->{path} =~ m{/Messages\.json$} && form_fields($_->{body})->{To} eq $client }
  sink_requests($gw);
is(scalar(@to_client), 1, '... one request to Twilio for the client');
is(form_fields($to_client[0]{body})->{Body}, 'Wizyta 1 jutro. Odpowiedz TAK lub NIE.', '... with the text');

# What Twilio POSTs to the webhook when the client answers, and the
# signature it puts in X-Twilio-Signature.
sub twilio_webhook
{
	my ($from, $body, $sid) = @_;
	my %f = (
		ToCountry => 'PL', ToCity => '', SmsMessageSid => $sid, NumMedia => '0',
		SmsSid => $sid, SmsStatus => 'received', Body => $body, To => '+48600000000',
		NumSegments => '1', MessageSid => $sid, AccountSid => 'ACtest', From => $from,
		FromCountry => 'PL', ApiVersion => '2010-04-01');
	my $data = $inbound_url . join('', map { $_ . $f{$_} } sort keys %f);
	my $sig = hmac_sha1_base64(encode('UTF-8', $data), 'twilio-token');
	$sig .= '=' while length($sig) % 4;
	return (\%f, $sig);
}

# The web endpoint's call: the form as JSON, the header as it came.
sub record_inbound
{
	my ($fields, $sig) = @_;
	my $json = JSON::PP->new->canonical->encode($fields);
	$json =~ s/'/''/g;
	return $node->psql('app',
		"SELECT action || ' ' || coalesce(message_id::text, '-') FROM reminder.record_inbound('tw', '$json', '$sig')");
}

my ($fields, $sig) = twilio_webhook($client, 'Tak', 'SM00000000000000000000000000000001');
my ($forged) = twilio_webhook($client, 'Tak', 'SM00000000000000000000000000000002');
my ($ret, $out, $err) = record_inbound($forged, $sig);
like($err, qr/ERROR:  inbound request for channel "tw" is not signed by its provider/,
	'a request whose fields do not match its signature is refused');
is($node->safe_psql('app', 'SELECT count(*) FROM reminder.event'), '0', '... and records nothing');

($ret, $out, $err) = record_inbound($fields, $sig);
is($out, "confirmed $first", '"Tak" confirms the message the client got');
is($node->safe_psql('app', "SELECT reminder.has_event('visit_sms', '1')"), 't', 'the rule sees the confirmation');

# The day-before reminder's follow-up falls due now.
$node->safe_psql('app', "SELECT reminder.reschedule($second, now())");
ok(query_until($node, 'app', "SELECT status || ': ' || last_error FROM reminder.message WHERE id = $second",
		'suppressed: rule: stop condition holds'),
	'the follow-up is suppressed by the stop condition when due');

# STOP, and the next message to the number.
($fields, $sig) = twilio_webhook($client, 'STOP', 'SM00000000000000000000000000000003');
($ret, $out, $err) = record_inbound($fields, $sig);
is($out, 'opt_out -', 'STOP opts the number out');
is($node->safe_psql('app', "SELECT address || ' ' || channel || ' ' || action || ' ' || source FROM reminder.consent_log"),
	"$client tw opt_out inbound:tw", '... in the consent log, with the channel and its source');
my ($next, $other) = split /\n/, $node->safe_psql('app', qq{
	SELECT reminder.send('tw', '{"phone": "$client"}', 'visit', '{"row": {"id": 2}}');
	SELECT reminder.send('tw', '{"phone": "+48601234999"}', 'visit', '{"row": {"id": 3}}');
});
ok(query_until($node, 'app', "SELECT status FROM reminder.message WHERE id = $other", 'sent'),
	'a message to another number is sent');
ok(query_until($node, 'app', "SELECT status FROM reminder.message WHERE id = $next", 'suppressed'),
	'the next message to the number that sent STOP is suppressed');
@to_client = grep { $_->{path} =~ m{/Messages\.json$} && form_fields($_->{body})->{To} eq $client }
  sink_requests($gw);
is(scalar(@to_client), 1, 'Twilio got nothing more for the client after the first reminder');

done_testing();
