# The host policy on the address actually connected to, for every channel
# kind: with loopback denied (127.0.0.0/8 and ::1), no spelling of the local
# host gets through - the unspecified addresses 0.0.0.0, "0" and [::] that
# connect there, IPv4-mapped, IPv4-compatible and NAT64 IPv6 forms, and the
# decimal, octal and hexadecimal IPv4 forms libcurl accepts - while servers
# listen there.  Then the default deny list: the cloud metadata addresses.
#
# Forms that would leave the host if they were not denied (NAT64, the
# metadata addresses) are only tried once the loopback forms have been seen
# denied, or the default list seen to hold them, so that a build without
# these checks fails here without sending anything anywhere.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;

use ChannelTest;
use ReminderTest;

my $node = start_node('ssrf', conf => "reminder.denied_hosts = '127.0.0.0/8, ::1'\n");
my $sink = start_sink();
my $smtp = start_smtp_sink();
create_db($node, 'app');
$node->safe_psql('app', "SELECT reminder.create_template('hi', 'hi', 'Hi')");
my $port = $sink->{port};
my $smtp_port = $smtp->{ports}{plain};

my $policy = '"max_attempts": 1';
my %channels = (
	# name => [kind, settings, secrets, recipient]
	hook_zero => [ 'webhook', qq{{"url": "http://0.0.0.0:$port/a", $policy}}, '{}', '{}' ],
	hook_0 => [ 'webhook', qq{{"url": "http://0:$port/a", $policy}}, '{}', '{}' ],
	hook_v6 => [ 'webhook', qq{{"url": "http://[::]:$port/a", $policy}}, '{}', '{}' ],
	hook_mapped => [ 'webhook', qq{{"url": "http://[::ffff:127.0.0.1]:$port/a", $policy}}, '{}', '{}' ],
	hook_mapped0 => [ 'webhook', qq{{"url": "http://[::ffff:0.0.0.0]:$port/a", $policy}}, '{}', '{}' ],
	hook_dec => [ 'webhook', qq{{"url": "http://2130706433:$port/a", $policy}}, '{}', '{}' ],
	hook_hex => [ 'webhook', qq{{"url": "http://0x7f.1:$port/a", $policy}}, '{}', '{}' ],
	hook_oct => [ 'webhook', qq{{"url": "http://017700000001:$port/a", $policy}}, '{}', '{}' ],
	hook_short => [ 'webhook', qq{{"url": "http://127.1:$port/a", $policy}}, '{}', '{}' ],
	hook_name => [ 'webhook', qq{{"url": "http://localhost:$port/a", $policy}}, '{}', '{}' ],
	# the recipient's url (same origin as the channel's, written otherwise)
	hook_rcpt => [ 'webhook', qq{{"url": "http://0.0.0.0:$port/a", $policy}}, '{}', qq{{"url": "http://0:$port/b"}} ],
	mail => [ 'email', qq{{"url": "smtp://0.0.0.0:$smtp_port", "from": "r\@example.com", $policy}}, '{}',
		'{"email": "x@example.com"}' ],
	mail_v6 => [ 'email', qq{{"url": "smtp://[::]:$smtp_port", "from": "r\@example.com", $policy}}, '{}',
		'{"email": "x@example.com"}' ],
	twilio => [ 'sms', qq{{"provider": "twilio", "account_sid": "AC1", "from": "+48600000000", "base_url": "http://0:$port", $policy}},
		'{"auth_token": "t"}', '{"phone": "+48601234567"}' ],
	smsapi => [ 'sms', qq{{"provider": "smsapi", "base_url": "http://[::]:$port", $policy}},
		'{"token": "t"}', '{"phone": "+48601234567"}' ],
	generic => [ 'sms', qq{{"provider": "generic", "method": "GET", "url": "http://0x7f.1:$port/gw?to={{to}}", $policy}},
		'{}', '{"phone": "+48601234567"}' ],
	slack => [ 'slack', qq{{"url": "http://0.0.0.0:$port/slack", $policy}}, '{}', '{}' ],
);

for my $name (sort keys %channels)
{
	my ($kind, $settings, $secrets, $rcpt) = @{ $channels{$name} };
	$node->safe_psql('app', qq{
		SELECT reminder.create_channel('$name', '$kind', '$settings', '$secrets');
		SELECT reminder.send('$name', '$rcpt', 'hi', '{}', 'ssrf-$name');
	});
}

sub settled
{
	my ($keys) = @_;
	my $list = join(',', map { "'$_'" } @$keys);
	return query_until($node, 'app',
		"SELECT count(*) = " . scalar(@$keys) . " FROM reminder.message WHERE idempotency_key IN ($list) AND status IN ('sent', 'failed')");
}

my @keys = map { "ssrf-$_" } sort keys %channels;
ok(settled(\@keys), 'every message is settled');
my %result = map { split /\|/, $_, 2 } split /\n/, $node->safe_psql('app', q{
	SELECT idempotency_key, status || ' ' || coalesce(last_error, '') FROM reminder.message
	WHERE idempotency_key LIKE 'ssrf-%'});
for my $name (sort keys %channels)
{
	like($result{"ssrf-$name"}, qr/^failed .*denied by reminder\.denied_hosts/,
		"$name ($channels{$name}[0]): denied, as the local host it reaches");
}
like($result{'ssrf-hook_zero'}, qr/destination 0\.0\.0\.0 .*which reaches 127\.0\.0\.1/,
	'... the error says what 0.0.0.0 reaches');
is(scalar(sink_requests($sink)), 0, 'the HTTP server got no request');
is(smtp_connections($smtp, 'plain'), 0, 'the SMTP server got no connection');

# IPv6 forms that embed an IPv4 address: NAT64 (well-known and local-use
# prefixes) and IPv4-compatible.  Tried only if the local forms above were
# denied: these addresses are routed off the host.
SKIP:
{
	skip 'the unspecified addresses were not denied: not trying addresses that leave the host', 5
	  unless ($result{'ssrf-hook_zero'} // '') =~ /denied/ && ($result{'ssrf-hook_v6'} // '') =~ /denied/;
	my @forms = ('[64:ff9b::7f00:1]', '[64:ff9b::127.0.0.1]', '[64:ff9b:1::7f00:1]', '[::127.0.0.1]');
	for my $i (0 .. $#forms)
	{
		$node->safe_psql('app', qq{
			SELECT reminder.create_channel('embed$i', 'webhook', '{"url": "http://$forms[$i]:$port/a", $policy}');
			SELECT reminder.send('embed$i', '{}', 't', '{}', 'embed-$i');
		});
	}
	ok(settled([ map { "embed-$_" } 0 .. $#forms ]), 'embedded-IPv4 forms settled');
	for my $i (0 .. $#forms)
	{
		like($node->safe_psql('app', "SELECT status || ' ' || last_error FROM reminder.message WHERE idempotency_key = 'embed-$i'"),
			qr/^failed destination .*which reaches 127\.0\.0\.1, is denied by reminder\.denied_hosts/,
			"$forms[$i]: denied as the IPv4 address it embeds");
	}
}

# The default list: link-local and the cloud metadata endpoints outside it
# (a restart, not a reload: the worker must not see these addresses with
# the loopback-only list still in force)
$node->adjust_conf('postgresql.conf', 'reminder.denied_hosts', undef);
$node->restart;
my $default = $node->safe_psql('app', "SHOW reminder.denied_hosts");
my @metadata = ('100.100.100.200', 'fd00:ec2::254', 'fd20:ce::254', 'fd00:c1::a9fe:a9fe', '168.63.129.16', '192.0.0.192');
for my $addr ('169.254.0.0/16', 'fe80::/10', @metadata)
{
	like($default, qr/(^|, )\Q$addr\E(,|$)/, "reminder.denied_hosts denies $addr by default");
}
SKIP:
{
	skip 'the metadata addresses are not in the default list: not trying them', 2 + @metadata
	  unless $default =~ /100\.100\.100\.200/ && $default =~ /fd00:ec2::254/;
	my @urls = (map({ /:/ ? "http://[$_]/latest/meta-data" : "http://$_/latest/meta-data" } @metadata),
		'http://[64:ff9b::6464:64c8]/latest/meta-data');
	for my $i (0 .. $#urls)
	{
		$node->safe_psql('app', qq{
			SELECT reminder.create_channel('meta$i', 'webhook', '{"url": "$urls[$i]", $policy}');
			SELECT reminder.send('meta$i', '{}', 't', '{}', 'meta-$i');
		});
	}
	ok(settled([ map { "meta-$_" } 0 .. $#urls ]), 'messages to metadata addresses settled');
	for my $i (0 .. $#urls)
	{
		like($node->safe_psql('app', "SELECT status || ' ' || last_error FROM reminder.message WHERE idempotency_key = 'meta-$i'"),
			qr/^failed destination .* denied by reminder\.denied_hosts/, "$urls[$i]: denied by default");
	}
}

stop_sink($sink);
stop_server($smtp);
$node->stop;
done_testing();
