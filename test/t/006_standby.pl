# Only a primary delivers: a streaming standby with the same backlog sends
# nothing, and delivers it once promoted.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use ReminderTest;

my $sink = start_sink();

# The primary's own worker is paused, so the backlog stays for the standby.
my $primary = start_node('primary', init => { allows_streaming => 1 }, conf => "reminder.enabled = off\n");
create_db($primary, 'app');
$primary->safe_psql('app', qq{
	SELECT reminder.create_channel('hook', 'webhook', '{"url": "$sink->{url}/hook"}');
});
$primary->backup('base');

my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->append_conf('postgresql.conf', "reminder.enabled = on\n");
$standby->start;

$primary->safe_psql('app', q{
	SELECT reminder.send('hook', '{}', 't', '{}', 'backlog-' || g) FROM generate_series(1, 100) g;
});
$primary->wait_for_catchup($standby);
is($standby->safe_psql('app', "SELECT count(*) FROM reminder.message WHERE status = 'scheduled'"),
	'100', 'the standby has the backlog');
ok(query_until($standby, 'app', "SELECT state = 'standby' FROM reminder.worker_status() WHERE database = 'app'"),
	'the standby\'s worker runs, idle, in state standby');
sleep 2;
is(scalar(sink_requests($sink)), 0, 'nothing is sent from the standby');
is($standby->safe_psql('app', "SELECT sum(messages) FROM reminder.queue WHERE status = 'scheduled'"),
	'100', 'reminder.queue reads the backlog on the standby');
my ($ret, $out, $err) = $standby->psql('app', "SELECT reminder.send('hook', '{}', 't')");
like($err, qr/ERROR:  cannot execute .* in a read-only transaction/, 'scheduling on the standby is refused (read-only)');
is($standby->safe_psql('app', "SELECT (reminder.render('t', '{}', '{}', 'hook')).body IS NOT NULL"),
	't', 'previewing with render() works there');
is($standby->safe_psql('app', "SELECT count(*) FROM reminder.delivery_counters()"),
	'0', 'and nothing is counted as delivered');

$primary->stop;
$standby->promote;
ok(query_until($standby, 'app', "SELECT count(*) = 100 FROM reminder.message WHERE status = 'sent'"),
	'once promoted, it delivers the backlog');
is(scalar(sink_requests($sink)), 100, 'each message once');
ok(query_until($standby, 'app', "SELECT sent = 100 FROM reminder.delivery_counters() WHERE database = 'app'"),
	'and counts them');
is($standby->safe_psql('app', "SELECT state FROM reminder.worker_status() WHERE database = 'app'"),
	'running', 'and its worker is running');

stop_sink($sink);
$standby->stop;
done_testing();
