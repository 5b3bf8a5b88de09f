# Slack incoming webhooks against a stand-in (test/servers/provider_sink.py): the
# payload's shape, Slack's escaping of values, Block Kit blocks from the
# template's html part, and Slack's answers classified.
use strict;
use warnings;
use utf8;

use Encode;
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;

use ChannelTest;
use ReminderTest;

my $node = start_node('slack');
my $gw = start_provider_sink();
create_db($node, 'app');
my $hook = "$gw->{url}/services/T000/B000";

$node->safe_psql('app', qq~
	SELECT reminder.create_channel('slack', 'slack',
		'{"username": "Przypominacz", "icon_emoji": ":alarm_clock:", "channel": "#ops", "max_attempts": 3, "retry_delay": "200ms"}',
		'{"url": "$hook/ok"}');
	SELECT reminder.create_channel('slack_plain', 'slack', '{"url": "$hook/plain"}');
	SELECT reminder.create_channel('slack_invalid', 'slack', '{}', '{"url": "$hook/invalid"}');
	SELECT reminder.create_channel('slack_gone', 'slack', '{}', '{"url": "$hook/gone"}');
	SELECT reminder.create_channel('slack_busy', 'slack', '{"retry_delay": "100ms"}', '{"url": "$hook/busy"}');
	SELECT reminder.create_channel('slack_broken', 'slack', '{"retry_delay": "100ms"}', '{"url": "$hook/broken"}');
	SELECT reminder.create_template('alert', 'Spotkanie: *{{title}}* o 15:00 — <https://example.com/m/1|szczegóły>');
	SELECT reminder.create_template('blocks', 'Spotkanie: {{title}}',
		html => '[{"type": "section", "text": {"type": "mrkdwn", "text": "*{{title}}*\\n{{note}}"}}]');
	SELECT reminder.create_template('shared', 'Tekst: {{title}}', html => '<p>{{title}}</p>');
	SELECT reminder.create_template('broken_blocks', 'x', html => '[{"type": "section", ');
~);

$node->safe_psql('app', q{
	SELECT reminder.send('slack', '{}', 'alert', '{"title": "Zarząd <!channel> & \"goście\""}', 'sl-text');
	SELECT reminder.send('slack', '{}', 'blocks', '{"title": "Łódź \"A\" & <B>", "note": "line\\\\two\nthree"}', 'sl-blocks');
	SELECT reminder.send('slack_plain', '{}', 'shared', '{"title": "T"}', 'sl-shared');
	SELECT reminder.send('slack', '{}', 'broken_blocks', '{}', 'sl-badblocks');
	SELECT reminder.send('slack_invalid', '{}', 'alert', '{"title": "x"}', 'sl-invalid');
	SELECT reminder.send('slack_gone', '{}', 'alert', '{"title": "x"}', 'sl-gone');
	SELECT reminder.send('slack_busy', '{}', 'alert', '{"title": "x"}', 'sl-busy');
	SELECT reminder.send('slack_broken', '{}', 'alert', '{"title": "x"}', 'sl-broken');
});
ok(query_until($node, 'app',
		"SELECT count(*) = 8 FROM reminder.message WHERE idempotency_key LIKE 'sl-%' AND status IN ('sent', 'failed')"),
	'the Slack messages are settled');

my @req = grep { $_->{path} =~ m{^/services/} } sink_requests($gw);
my ($text) = grep { $_->{headers}{'Idempotency-Key'} eq 'sl-text' } @req;
is($text->{method}, 'POST', 'POST to the webhook URL (kept in secrets)');
is($text->{path}, '/services/T000/B000/ok', '... that URL');
like($text->{headers}{'Content-Type'}, qr{^application/json}, '... JSON');
my $p = decode_json(encode('UTF-8', $text->{body}));
is_deeply([ sort keys %$p ], [qw(channel icon_emoji text username)], 'payload: text, username, icon_emoji, channel');
is_deeply([ @$p{qw(username icon_emoji channel)} ], [ 'Przypominacz', ':alarm_clock:', '#ops' ], '... from the settings');
is($p->{text},
	'Spotkanie: *Zarząd &lt;!channel&gt; &amp; "goście"* o 15:00 — <https://example.com/m/1|szczegóły>',
	'text: values escaped as Slack wants (& < >, so no <!channel> from data), the template\'s own link kept');

my ($blocks) = grep { $_->{headers}{'Idempotency-Key'} eq 'sl-blocks' } @req;
my $b = decode_json(encode('UTF-8', $blocks->{body}));
is($b->{text}, 'Spotkanie: Łódź "A" &amp; &lt;B&gt;', 'with blocks, the text goes too');
is_deeply($b->{blocks}, [ { type => 'section', text => { type => 'mrkdwn', text => "*Łódź \"A\" & <B>*\nline\\two\nthree" } } ],
	'blocks from the html part, values JSON-escaped inside them');
my ($shared) = grep { $_->{headers}{'Idempotency-Key'} eq 'sl-shared' } @req;
ok(!exists decode_json(encode('UTF-8', $shared->{body}))->{blocks}, 'an html part that is not a JSON array is left out');

my %st = map { my @f = split /\|/; ($f[0] => "$f[1]/$f[2]/$f[3]") } split /\n/, $node->safe_psql('app', q{
	SELECT idempotency_key, status, attempts, coalesce(last_error, '')
	FROM reminder.message WHERE idempotency_key LIKE 'sl-%'});
is($st{'sl-text'}, 'sent/1/', 'Slack\'s 200 "ok": sent');
like($st{'sl-badblocks'}, qr{^failed/1/the html part of template "broken_blocks" is not an array of Slack blocks$},
	'an html part that starts as an array but is not valid JSON fails the message');
is($st{'sl-invalid'}, 'failed/1/Slack: HTTP 400: invalid_payload', '400 invalid_payload: failed at once');
is($st{'sl-gone'}, 'failed/1/Slack: HTTP 404: no_service', '404 no_service: failed at once');
is($st{'sl-busy'}, 'sent/2/', '429: retried, then sent');
is($st{'sl-broken'}, 'sent/2/', '500: retried, then sent');
my @busy = map { $_->{t} } grep { $_->{path} =~ m{/busy$} } @req;
cmp_ok($busy[1] - $busy[0], '>=', 0.9, 'Retry-After: 1 is honoured (retry after ' . sprintf('%.2f', $busy[1] - $busy[0]) . ' s)');

stop_server($gw);
$node->stop;
done_testing();
