# Upgrading a running installation from 0.1.0, the way a DBA does it: a
# cluster runs the 0.1.0 library (built from the commit that shipped it) with
# channels, templates, a rule and pending messages; the new library is
# installed over it and the server restarted; the worker waits, saying why,
# until ALTER EXTENSION reminder UPDATE; then the pending messages go out and
# the rule keeps working.  The upgraded schema must equal a fresh install of
# the new version, object by object.
use strict;
use warnings;

use File::Copy;
use File::Path qw(make_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use ReminderTest;

my $OLD_VERSION = '0.1.0';
my $OLD_COMMIT = '05ec038a66d197a444cd77ba8f8bbf13a9352c50';	# shipped as 0.1.0

my $src = $ENV{REMINDER_SRC};
my $new_version = `sed -n "s/^default_version[[:space:]]*=[[:space:]]*'\\(.*\\)'/\\1/p" $src/reminder.control`;
chomp $new_version;

# --- an installation of PostgreSQL with the 0.1.0 library in it ---------------
my $tmp = PostgreSQL::Test::Utils::tempdir();
my $pg_config = `which pg_config`;
chomp $pg_config;
my $bindir = `$pg_config --bindir`;
chomp $bindir;
my $sharedir = `$pg_config --sharedir`;
chomp $sharedir;
my $pkglibdir = `$pg_config --pkglibdir`;
chomp $pkglibdir;
my $root = "$tmp/install";    # $root$bindir... as a DESTDIR install would lay it out
my $prefix = $bindir =~ s{/bin$}{}r;

make_path("$root$prefix", "$root$sharedir");
system("cp -a $prefix/. $root$prefix/") == 0 or die "copy of the installation failed";
system("cp -a $sharedir/. $root$sharedir/") == 0 or die "copy of the share directory failed";

# The private installation may itself be a DESTDIR copy (scripts/test-all);
# pg_config answers with the paths it was built for, relative to its binary.
my $old_src = "$tmp/reminder-$OLD_VERSION";
make_path($old_src);
system("git -c safe.directory=* -C $src archive $OLD_COMMIT | tar -x -C $old_src") == 0
  or BAIL_OUT("cannot extract commit $OLD_COMMIT (0.1.0) from the repository: a full clone is needed");
my $old_pg_config = "$root$bindir/pg_config";
# a private installation (scripts/test-all) has no headers: build with the system's
my $build_pg_config = $pg_config;
my $includes = `$pg_config --includedir-server`;
chomp $includes;
$build_pg_config = '/usr/lib/postgresql/15/bin/pg_config' unless -f "$includes/postgres.h";
system("make -s -C $old_src -j2 PG_CONFIG=$build_pg_config >$tmp/build.log 2>&1") == 0
  or BAIL_OUT("building 0.1.0 failed, see $tmp/build.log");
# install into the copy: files go where $old_pg_config says, which is the copy
my $old_pkglibdir = `$old_pg_config --pkglibdir`;
chomp $old_pkglibdir;
my $old_sharedir = `$old_pg_config --sharedir`;
chomp $old_sharedir;
copy("$old_src/reminder.so", "$old_pkglibdir/reminder.so") or die "copy reminder.so: $!";
unlink glob("$old_sharedir/extension/reminder*");
copy("$old_src/reminder.control", "$old_sharedir/extension/reminder.control") or die;
copy("$old_src/sql/reminder--$OLD_VERSION.sql", "$old_sharedir/extension/reminder--$OLD_VERSION.sql") or die;
system("chmod -R a+rX $tmp") == 0 or die;

# --- 0.1.0 running, with work in it -----------------------------------------------
my $sink = start_sink();
my $node = PostgreSQL::Test::Cluster->new('upgrade', install_path => "$root$prefix");
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'reminder'
reminder.poll_interval = 200
reminder.enabled = off
max_worker_processes = 16
log_line_prefix = '%m [%p] %b %d '
});
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE app');
is($node->safe_psql('app', "CREATE EXTENSION reminder; SELECT extversion FROM pg_extension WHERE extname = 'reminder'"),
	$OLD_VERSION, "the old installation is $OLD_VERSION");

$node->safe_psql('app', qq{
	SELECT reminder.create_channel('hook', 'webhook', '{"url": "$sink->{url}/hook"}', '{"signing_secret": "s3cret"}');
	SELECT reminder.create_channel('journal', 'log');
	SELECT reminder.create_template('t', '{"n": {{n}}}');
	SELECT reminder.create_template('meet', 'Meeting {{row.title}} at {{row.starts_at}}', 'Meeting');
	SELECT reminder.send('hook', '{"name": "a"}', 't', jsonb_build_object('n', g), 'pending-' || g)
	  FROM generate_series(1, 20) g;
	SELECT reminder.schedule('journal', '{"name": "later"}', 't', now() + interval '1 day', '{"n": 0}', 'later');
	CREATE TABLE meetings (id int PRIMARY KEY, title text, starts_at timestamptz);
	SELECT reminder.watch('meetings', 'before', column_name => 'starts_at',
	                      offsets => ARRAY[interval '1 hour'], channel => 'journal', template => 'meet',
	                      recipients => '{"to": {"name": "ops"}}');
	INSERT INTO meetings VALUES (1, 'kickoff', now() + interval '1 hour 1 second'),
	                            (2, 'review', now() + interval '3 days');
});
is($node->safe_psql('app', "SELECT count(*) FROM reminder.message WHERE status = 'scheduled'"),
	'23', '0.1.0 holds 23 pending messages');

# A follow_up sequence with a template per step, due next week: in 0.1.0 an
# unsubscribe link in step 1 opts out of step 1's template only.
$node->safe_psql('app', q{
	SELECT reminder.create_template('fu1', 'Did you look at our offer?');
	SELECT reminder.create_template('fu2', 'A last note about our offer');
	CREATE TABLE lead (id int PRIMARY KEY, email text, offer_sent_at timestamptz, replied_at timestamptz);
	SELECT reminder.watch('lead', 'follow_up', name => 'lead_followups', column_name => 'offer_sent_at',
	                      offsets => '{3 days, 10 days}', channel => 'journal', templates => '["fu1", "fu2"]',
	                      stop_condition => 'replied_at IS NOT NULL',
	                      recipients => '{"to": {"email": {"expr": "email"}}}');
	INSERT INTO lead VALUES (101, 'ada@example.com', now() + interval '1 day'),
	                        (102, 'bob@example.com', now() + interval '1 day');
	SELECT reminder.record_event(reminder.link_token(m.id, 'unsubscribe'))
	  FROM reminder.message m WHERE m.recipient ->> 'email' = 'ada@example.com' AND m.template = 'fu1';
	SELECT reminder.schedule('journal', '{"name": "c"}', 't', now() + interval '1 day', '{"n": 1, "category": "offers"}', 'with-category');
});
is($node->safe_psql('app', q{
	SELECT string_agg(m.template || ':' || g.verdict, ',' ORDER BY m.template)
	  FROM reminder.message m, reminder.gate_check(m.id) g WHERE m.recipient ->> 'email' = 'ada@example.com'}),
	'fu1:suppress,fu2:send', 'in 0.1.0 the unsubscribe link in step 1 leaves step 2 to be sent');
$node->stop;

# --- the new library installed over it, as "make install" would ----------------
copy("$pkglibdir/reminder.so", "$old_pkglibdir/reminder.so") or die "copy reminder.so: $!";
copy($_, "$old_sharedir/extension/") or die "copy $_: $!" for glob("$sharedir/extension/reminder*");
$node->append_conf('postgresql.conf', "reminder.enabled = on\n");
my $log_offset = -s $node->logfile;
$node->start;

ok( wait_until(
		sub {
			slurp_file($node->logfile, $log_offset) =~
			  /extension "reminder" is installed at version $OLD_VERSION in this database, but the loaded library is version $new_version; delivering nothing/;
		}),
	'the new library refuses to deliver for the old SQL, with a log line saying so');
like(slurp_file($node->logfile, $log_offset), qr/HINT:  Run ALTER EXTENSION reminder UPDATE/,
	'the log line says what to do');
ok(query_until($node, 'app',
		"SELECT state FROM reminder.worker_status() WHERE database = 'app'", 'waiting for ALTER EXTENSION UPDATE'),
	'worker_status() shows the worker waiting for the update');
sleep 1;
is($node->safe_psql('app', "SELECT count(*) FROM reminder.message WHERE status <> 'scheduled'"),
	'0', 'nothing was claimed meanwhile');
is(scalar(sink_requests($sink)), 0, 'nothing was sent meanwhile');

$node->safe_psql('app', 'ALTER EXTENSION reminder UPDATE');
is($node->safe_psql('app', "SELECT extversion FROM pg_extension WHERE extname = 'reminder'"),
	$new_version, "ALTER EXTENSION UPDATE brings it to $new_version");

ok(query_until($node, 'app',
		"SELECT count(*) = 21 FROM reminder.message WHERE status = 'sent'"),
	'after the update, the 20 webhooks and the due rule reminder are sent');
my @reqs = grep { $_->{path} eq '/hook' } sink_requests($sink);
is(scalar(@reqs), 20, 'the sink got each pending webhook once');
like(slurp_file($node->logfile, $log_offset), qr/extension "reminder" is now at version $new_version; delivering/,
	'the worker says it delivers again');
is($node->safe_psql('app', "SELECT status FROM reminder.message WHERE idempotency_key = 'later'"),
	'scheduled', 'a message due tomorrow stays scheduled');

# the rule made in 0.1.0 still follows its rows
$node->safe_psql('app', q{
	UPDATE meetings SET starts_at = now() + interval '5 days' WHERE id = 2;
	INSERT INTO meetings VALUES (3, 'retro', now() + interval '2 days');
	DELETE FROM meetings WHERE id = 1;
});
is($node->safe_psql('app', q{
	SELECT string_agg(m.status || ':' || (m.due_at = r.starts_at - interval '1 hour')::text, ',' ORDER BY r.id)
	  FROM meetings r
	  JOIN reminder.message m ON m.source_key = r.id::text AND m.rule_id IS NOT NULL
}), 'scheduled:true,scheduled:true', 'the old rule moves a reminder and makes a new one after the update')
  or diag($node->safe_psql('app', 'SELECT id, status, due_at, source_key, data FROM reminder.message ORDER BY id'));

# consent categories of rules: 0.1.0's rules, messages and opt-outs get theirs
is($node->safe_psql('app', "SELECT string_agg(name || ':' || category, ',' ORDER BY name) FROM reminder.rule"),
	'lead_followups:lead_followups,meetings_before:meetings_before', 'every 0.1.0 rule has its name as its category');
is($node->safe_psql('app', q{
	SELECT string_agg(DISTINCT coalesce(m.category, '-'), ',') FROM reminder.message m
	  JOIN reminder.rule r ON r.id = m.rule_id WHERE r.name = 'lead_followups'}),
	'lead_followups', 'and so have the messages it made');
is($node->safe_psql('app', "SELECT category FROM reminder.message WHERE idempotency_key = 'with-category'"),
	'offers', 'a scheduled message shows the category of its data');
is($node->safe_psql('app', q{
	SELECT string_agg(m.recipient ->> 'email' || ':' || m.template || ':' || g.verdict, ',' ORDER BY m.recipient ->> 'email', m.template)
	  FROM reminder.message m JOIN reminder.rule r ON r.id = m.rule_id, reminder.gate_check(m.id) g
	 WHERE r.name = 'lead_followups'}),
	'ada@example.com:fu1:suppress,ada@example.com:fu2:suppress,bob@example.com:fu1:send,bob@example.com:fu2:send',
	'the unsubscribe from step 1 made in 0.1.0 now stops step 2 too, and only for that lead');
is($node->safe_psql('app', q{
	SELECT string_agg(category || ':' || opted_out || ':' || source, ',' ORDER BY category) FROM reminder.consent}),
	'fu1:true:unsubscribe link,lead_followups:true:unsubscribe link',
	'the opt-out of the template is kept and carried to the rule\'s category');
is($node->safe_psql('app', q{
	SELECT string_agg(category || ':' || action || ':' || source, ',' ORDER BY id) FROM reminder.consent_log}),
	'fu1:opt_out:unsubscribe link,lead_followups:opt_out:update to 0.2.0: a rule\'s category',
	'the carried opt-out is logged');
$node->safe_psql('app', q{
	INSERT INTO lead VALUES (103, 'ada@example.com', now() + interval '2 days');
	SELECT reminder.watch('lead', 'after', name => 'lead_thanks', column_name => 'offer_sent_at',
	                      channel => 'journal', template => 't', category => 'offers',
	                      recipients => '{"to": {"email": {"expr": "email"}}}');
	INSERT INTO lead VALUES (104, 'eve@example.com', now() + interval '2 days');
});
is($node->safe_psql('app', q{
	SELECT string_agg(m.source_key || ':' || m.category, ',' ORDER BY m.source_key, m.template)
	  FROM reminder.message m JOIN reminder.rule r ON r.id = m.rule_id
	 WHERE m.source_key IN ('103', '104')}),
	'103:lead_followups,103:lead_followups,104:lead_followups,104:lead_followups,104:offers',
	'after the update, the old rule writes its category and watch() takes one');

# --- the upgraded schema is a fresh install's ---------------------------------------
$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('fresh', 'CREATE EXTENSION reminder');
my $upgraded = schema_signature($node, 'app');
my $fresh = schema_signature($node, 'fresh');
my @u = split /\n/, $upgraded;
my @f = split /\n/, $fresh;
my %in_u = map { $_ => 1 } @u;
my %in_f = map { $_ => 1 } @f;
my @only_u = grep { !$in_f{$_} } @u;
my @only_f = grep { !$in_u{$_} } @f;
ok(scalar(@u) > 300, 'the signature covers the schema (' . scalar(@u) . ' lines)');
is(scalar(@only_u) + scalar(@only_f), 0, 'the upgraded schema equals a fresh install')
  or diag(join("\n", (map { "only upgraded: $_" } @only_u), (map { "only fresh:    $_" } @only_f)));

$node->stop;
stop_sink($sink);
done_testing();

# Every object of the extension, one line each, in a stable order: what \d+,
# \df+ and \dp would show, and what pg_dump would need.
sub schema_signature
{
	my ($node, $db) = @_;
	return $node->safe_psql($db, q{
WITH ext AS (SELECT oid FROM pg_extension WHERE extname = 'reminder'),
ns AS (SELECT oid FROM pg_namespace WHERE nspname = 'reminder'),
-- partitions the worker made are no members, and come and go with time
made AS (
	SELECT i.inhrelid AS oid FROM pg_inherits i
	 WHERE NOT EXISTS (SELECT FROM pg_depend d
	                    WHERE d.classid = 'pg_class'::regclass AND d.objid = i.inhrelid AND d.deptype = 'e')
	   AND i.inhparent IN (SELECT objid FROM pg_depend WHERE refobjid = (SELECT oid FROM ext) AND deptype = 'e')
),
acl(obj, acl) AS (
	SELECT c.oid::regclass::text, (SELECT string_agg(a::text, ' ' ORDER BY a::text) FROM unnest(c.relacl) a)
	  FROM pg_class c WHERE c.relnamespace = (SELECT oid FROM ns)
)
SELECT line FROM (
	-- membership, by description
	SELECT 'member ' || pg_describe_object(d.classid, d.objid, d.objsubid)
	  FROM pg_depend d WHERE d.refobjid = (SELECT oid FROM ext) AND d.deptype = 'e'
	UNION ALL
	-- relations
	SELECT format('relation %s kind=%s persistence=%s options=%s rls=%s acl=%s comment=%s part=%s bound=%s',
	              c.oid::regclass, c.relkind, c.relpersistence, c.reloptions, c.relrowsecurity,
	              (SELECT acl FROM acl WHERE obj = c.oid::regclass::text),
	              obj_description(c.oid, 'pg_class'),
	              CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END,
	              pg_get_expr(c.relpartbound, c.oid))
	  FROM pg_class c WHERE c.relnamespace = (SELECT oid FROM ns) AND c.relkind <> 'i'
	   AND c.oid NOT IN (SELECT oid FROM made)
	UNION ALL
	-- columns, numbered among the live ones
	SELECT format('column %s.%s #%s %s notnull=%s default=%s identity=%s generated=%s comment=%s acl=%s',
	              c.oid::regclass, a.attname,
	              row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum),
	              format_type(a.atttypid, a.atttypmod), a.attnotnull,
	              pg_get_expr(ad.adbin, ad.adrelid), a.attidentity, a.attgenerated,
	              col_description(c.oid, a.attnum), a.attacl)
	  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
	  LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
	 WHERE c.relnamespace = (SELECT oid FROM ns) AND c.relkind IN ('r', 'p', 'v', 'm', 'c', 'f')
	   AND c.oid NOT IN (SELECT oid FROM made)
	UNION ALL
	SELECT format('index %s on %s: %s comment=%s', i.indexrelid::regclass, i.indrelid::regclass,
	              regexp_replace(pg_get_indexdef(i.indexrelid), '^CREATE (UNIQUE )?INDEX \S+ ', ''),
	              obj_description(i.indexrelid, 'pg_class'))
	  FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid WHERE c.relnamespace = (SELECT oid FROM ns)
	   AND c.oid NOT IN (SELECT oid FROM made)
	UNION ALL
	SELECT format('constraint %s on %s: %s', co.conname, co.conrelid::regclass, pg_get_constraintdef(co.oid))
	  FROM pg_constraint co WHERE co.connamespace = (SELECT oid FROM ns) AND co.conrelid <> 0
	   AND co.conrelid NOT IN (SELECT oid FROM made)
	UNION ALL
	SELECT format('trigger %s: %s', t.tgname, pg_get_triggerdef(t.oid))
	  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
	 WHERE c.relnamespace = (SELECT oid FROM ns) AND NOT t.tgisinternal
	UNION ALL
	SELECT format('view %s: %s', c.oid::regclass, md5(pg_get_viewdef(c.oid)))
	  FROM pg_class c WHERE c.relnamespace = (SELECT oid FROM ns) AND c.relkind IN ('v', 'm')
	UNION ALL
	SELECT format('policy %s on %s: %s %s using=%s check=%s', p.polname, p.polrelid::regclass, p.polcmd,
	              p.polroles::regrole[], pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid))
	  FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid WHERE c.relnamespace = (SELECT oid FROM ns)
	UNION ALL
	SELECT format('function %s kind=%s returns %s args=(%s) lang=%s volatility=%s strict=%s secdef=%s leakproof=%s parallel=%s config=%s cost=%s rows=%s src=%s bin=%s acl=%s comment=%s',
	              p.oid::regprocedure, p.prokind, pg_get_function_result(p.oid), pg_get_function_arguments(p.oid),
	              l.lanname, p.provolatile, p.proisstrict, p.prosecdef, p.proleakproof, p.proparallel,
	              p.proconfig, p.procost, p.prorows, md5(p.prosrc), p.probin,
	              (SELECT string_agg(a::text, ' ' ORDER BY a::text) FROM unnest(p.proacl) a),
	              obj_description(p.oid, 'pg_proc'))
	  FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang WHERE p.pronamespace = (SELECT oid FROM ns)
	UNION ALL
	SELECT format('type %s kind=%s labels=%s comment=%s', t.oid::regtype, t.typtype,
	              (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid),
	              obj_description(t.oid, 'pg_type'))
	  FROM pg_type t WHERE t.typnamespace = (SELECT oid FROM ns) AND t.typtype IN ('e', 'd', 'c')
	    AND NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = t.typrelid AND c.relkind <> 'c')
	UNION ALL
	SELECT format('sequence %s: %s %s %s %s', s.seqrelid::regclass, format_type(s.seqtypid, NULL),
	              s.seqstart, s.seqincrement, s.seqcycle)
	  FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid WHERE c.relnamespace = (SELECT oid FROM ns)
	UNION ALL
	SELECT format('dumped %s where %s', cfg.rel::regclass, cond.c)
	  FROM pg_extension e, unnest(e.extconfig, e.extcondition) WITH ORDINALITY AS x(rel, c, n)
	  CROSS JOIN LATERAL (SELECT x.rel AS rel) cfg
	  CROSS JOIN LATERAL (SELECT x.c AS c) cond
	 WHERE e.extname = 'reminder'
	UNION ALL
	SELECT format('schema reminder owner-acl=%s comment=%s',
	              (SELECT string_agg(a::text, ' ' ORDER BY a::text) FROM unnest(n.nspacl) a),
	              obj_description(n.oid, 'pg_namespace'))
	  FROM pg_namespace n WHERE n.oid = (SELECT oid FROM ns)
) s(line)
ORDER BY line COLLATE "C"
});
}
