# Without shared_preload_libraries the extension installs and works, says
# that nothing will be delivered, and no worker runs.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('plain');
$node->init;
$node->start;

my ($ret, $out, $err) = $node->psql('postgres', 'CREATE EXTENSION reminder');
is($ret, 0, 'CREATE EXTENSION works without the library preloaded');
like($err, qr/NOTICE:  reminder messages will not be delivered until the library is preloaded/,
	'... and says that nothing will be delivered');
like($err, qr/HINT:  Add reminder to shared_preload_libraries/, '... and how to fix it');
is($node->safe_psql('postgres', 'SELECT count(*) FROM reminder.worker_status()'), '0',
	'worker_status() is empty');
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'reminder%'"),
	'0', 'no launcher, no worker');
is($node->safe_psql('postgres', "SELECT has_function_privilege('reminder_user', 'reminder.worker_status()', 'EXECUTE')"),
	't', 'reminder_user may call worker_status()');

$node->stop;
done_testing();
