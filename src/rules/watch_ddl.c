/*-------------------------------------------------------------------------
 *
 * watch_ddl.c
 *	  The event triggers that keep rules in step with DDL on the tables
 *	  they watch.
 *
 *	  A rule whose table, or one of whose triggers, is dropped goes with
 *	  it (sql_drop).  After RENAME of a watched table or of one of its
 *	  columns, the rules' stored expressions and column names follow
 *	  (ddl_command_end), and a renamed column is checked against their
 *	  templates at commit.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "reminder.h"
#include "rules/rules.h"
#include "rules/watch.h"
#include "util/spi_util.h"
#include "util/util.h"

PG_FUNCTION_INFO_V1(reminder_watch_sql_drop);
PG_FUNCTION_INFO_V1(reminder_watch_ddl_end);

/* ----------------------------------------------------------------
 *		Event triggers
 * ----------------------------------------------------------------
 */

/*
 * sql_drop: a rule whose table is gone, or that lost one of its triggers
 * (DROP TRIGGER, DROP ... CASCADE of something it depends on), is removed
 * and its pending messages cancelled.
 */
Datum
reminder_watch_sql_drop(PG_FUNCTION_ARGS)
{
	OwnerContext ext;
	SPITupleTable *tt;
	uint64		n;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("reminder.watch_sql_drop() must be called as an event trigger")));

	owner_enter(&ext, extension_owner(), OWNER_PIN_SEARCH_PATH);
	SPI_connect();

	spi_exec_expect("SELECT r.id, r.table_name::oid, "
					"       NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = r.table_name) "
					"FROM reminder.rule r "
					"WHERE EXISTS (SELECT FROM pg_event_trigger_dropped_objects() d "
					"              WHERE d.classid IN ('pg_class'::regclass, 'pg_trigger'::regclass)) "
					"  AND (NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = r.table_name) "
					"       OR (SELECT count(*) FROM pg_trigger t "
					"           WHERE t.tgrelid = r.table_name "
					"             AND t.tgfoid = 'reminder.watch_trigger()'::regprocedure "
					"             AND t.tgargs = convert_to(r.id::text, 'SQL_ASCII') || '\\x00'::bytea) < 4)",
					0, NULL, NULL, NULL, false, 0, SPI_OK_SELECT);
	tt = SPI_tuptable;
	n = SPI_processed;
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull));
		Oid			relid = DatumGetObjectId(SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &isnull));
		bool		table_gone = DatumGetBool(SPI_getbinval(tt->vals[i], tt->tupdesc, 3, &isnull));
		Oid			t[1] = {INT8OID};
		Datum		v[1] = {Int64GetDatum(id)};

		spi_exec_expect("DELETE FROM reminder.rule WHERE id = $1", 1, t, v, NULL, false, 0, SPI_OK_DELETE);
		if (!table_gone)
			watch_drop_triggers(relid, id);
		(void) rules_cancel_pending(id, table_gone ? RULE_CANCEL_PREFIX "table dropped" :
									RULE_CANCEL_PREFIX "trigger dropped");
	}

	SPI_finish();
	owner_leave(&ext);
	PG_RETURN_VOID();
}

typedef struct RenameWalk
{
	Relation	rel;
	const char *oldname;
	const char *newname;
	bool		table;
} RenameWalk;

static char *
renamed(RenameWalk *rw, const char *text)
{
	return rule_expr_rename(rw->rel, text, rw->oldname, rw->newname, rw->table);
}

/*
 * Copy a jsonb container, renaming inside every {"expr": ...} and "when".
 * Returns what the last push returned: the whole value at the top level.
 */
static JsonbValue *
rename_container(RenameWalk *rw, JsonbParseState **st, JsonbContainer *c)
{
	JsonbIterator *it = JsonbIteratorInit(c);
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *lastkey = NULL;
	JsonbValue *res = NULL;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *text;

		switch (tok)
		{
			case WJB_KEY:
				lastkey = pnstrdup(v.val.string.val, v.val.string.len);
				res = pushJsonbValue(st, tok, &v);
				break;
			case WJB_VALUE:
			case WJB_ELEM:
				if ((text = watch_expr_of(&v)) != NULL)
				{
					pushJsonbValue(st, WJB_BEGIN_OBJECT, NULL);
					jsonb_push_key(st, "expr");
					jsonb_push_string(st, WJB_VALUE, renamed(rw, text));
					res = pushJsonbValue(st, WJB_END_OBJECT, NULL);
				}
				else if (tok == WJB_VALUE && lastkey && strcmp(lastkey, "when") == 0 &&
						 v.type == jbvString)
					jsonb_push_string(st, tok, renamed(rw, pnstrdup(v.val.string.val, v.val.string.len)));
				else if (v.type == jbvBinary && (lastkey == NULL || strcmp(lastkey, "templates") != 0))
					res = rename_container(rw, st, v.val.binary.data);
				else
					res = pushJsonbValue(st, tok, &v);
				break;
			default:
				res = pushJsonbValue(st, tok, NULL);
				break;
		}
	}
	return res;
}

static void
rename_rule(RenameWalk *rw, int64 id)
{
	Oid			t1[1] = {INT8OID};
	Datum		v1[1] = {Int64GetDatum(id)};
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Datum		d;
	char	   *column;
	Datum	   *keys;
	bool	   *keynulls;
	int			nkeys;
	JsonbParseState *st = NULL;
	Jsonb	   *recipients;
	Oid			types[6] = {INT8OID, TEXTOID, TEXTARRAYOID, TEXTOID, TEXTOID, JSONBOID};
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};

	spi_exec_expect("SELECT column_name, key_columns, condition, stop_condition, recipients "
					"FROM reminder.rule WHERE id = $1", 1, t1, v1, NULL, false, 0, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return;
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;

	column = TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull));
	if (!rw->table && strcmp(column, rw->oldname) == 0)
		column = pstrdup(rw->newname);
	deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(tup, desc, 2, &isnull)), TEXTOID, -1,
					  false, TYPALIGN_INT, &keys, &keynulls, &nkeys);
	for (int i = 0; i < nkeys && !rw->table; i++)
		if (strcmp(TextDatumGetCString(keys[i]), rw->oldname) == 0)
			keys[i] = CStringGetTextDatum(rw->newname);

	values[0] = Int64GetDatum(id);
	values[1] = CStringGetTextDatum(column);
	values[2] = PointerGetDatum(construct_array(keys, nkeys, TEXTOID, -1, false, TYPALIGN_INT));
	d = SPI_getbinval(tup, desc, 3, &isnull);
	values[3] = isnull ? (Datum) 0 : CStringGetTextDatum(renamed(rw, TextDatumGetCString(d)));
	nulls[3] = isnull ? 'n' : ' ';
	d = SPI_getbinval(tup, desc, 4, &isnull);
	values[4] = isnull ? (Datum) 0 : CStringGetTextDatum(renamed(rw, TextDatumGetCString(d)));
	nulls[4] = isnull ? 'n' : ' ';
	recipients = DatumGetJsonbP(SPI_getbinval(tup, desc, 5, &isnull));
	values[5] = JsonbPGetDatum(JsonbValueToJsonb(rename_container(rw, &st, &recipients->root)));
	spi_exec_expect("UPDATE reminder.rule SET column_name = $2, key_columns = $3, condition = $4, "
					"stop_condition = $5, recipients = $6 WHERE id = $1",
					6, types, values, nulls, false, 0, SPI_OK_UPDATE);
}

/* ----------------------------------------------------------------
 *		Columns renamed under templates
 * ----------------------------------------------------------------
 */

/*
 * A column of a watched table renamed in this transaction.  Templates name
 * columns as row.<column>, and the row a message is rendered with has the
 * new names: a template still using the old one would render it empty in
 * every pending message.  The rename is checked at commit, so that the
 * templates can be changed after it in the same transaction.
 */
typedef struct RenamedColumn
{
	Oid			relid;
	char	   *oldname;
	char	   *newname;
} RenamedColumn;

static List *renamed_columns = NIL;	/* in TopTransactionContext */
static bool rename_callback_registered = false;

/* An ARE matching row.<name> or old.<name> as a whole name. */
static char *
name_pattern(const char *name)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "(^|[^[:alnum:]_.])(row|old)\\.");
	for (const char *p = name; *p; p++)
	{
		if (!isalnum((unsigned char) *p) && !IS_HIGHBIT_SET(*p))
			appendStringInfoChar(&buf, '\\');
		appendStringInfoChar(&buf, *p);
	}
	appendStringInfoString(&buf, "($|[^[:alnum:]_])");
	return buf.data;
}

/*
 * At commit: a renamed column whose old name is gone must not be used by a
 * template of a rule on its table, its invitations' and cancellations'
 * included.  Templates chosen by an expression are not known here.
 */
static void
check_renamed_columns(void)
{
	Oid			types[2] = {OIDOID, TEXTOID};
	OwnerContext ext;
	ListCell   *lc;

	if (!OidIsValid(get_namespace_oid(REMINDER_SCHEMA, true)))
		return;

	owner_enter(&ext, extension_owner(), OWNER_PIN_SEARCH_PATH);
	PushActiveSnapshot(GetTransactionSnapshot());
	SPI_connect();
	foreach(lc, renamed_columns)
	{
		RenamedColumn *rc = lfirst(lc);
		Datum		values[2];

		if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(rc->relid)) ||
			get_attnum(rc->relid, rc->oldname) != InvalidAttrNumber)
			continue;			/* dropped, or a column has the name again */
		values[0] = ObjectIdGetDatum(rc->relid);
		values[1] = CStringGetTextDatum(name_pattern(rc->oldname));
		spi_exec_expect("SELECT t.name, r.name FROM reminder.rule r "
						"CROSS JOIN LATERAL jsonb_array_elements(r.recipients) AS rcpt(spec) "
						"CROSS JOIN LATERAL (SELECT rcpt.spec->>'template' "
						"                     WHERE jsonb_typeof(rcpt.spec->'template') = 'string' "
						"                    UNION SELECT e.value FROM jsonb_each_text(CASE WHEN jsonb_typeof(rcpt.spec->'templates') = 'object' "
						"                                                           THEN rcpt.spec->'templates' END) AS e "
						"                    UNION SELECT e FROM jsonb_array_elements_text(CASE WHEN jsonb_typeof(rcpt.spec->'templates') = 'array' "
						"                                                                 THEN rcpt.spec->'templates' END) AS e "
						"                    UNION SELECT rcpt.spec->'invite'->>k FROM unnest(ARRAY['template', 'cancel_template']) AS k "
						"                     WHERE jsonb_typeof(rcpt.spec->'invite'->k) = 'string') AS used(name) "
						"JOIN reminder.template t ON t.name = used.name "
						"WHERE r.table_name = $1 "
						"  AND (t.subject ~ $2 OR t.body ~ $2 OR t.html ~ $2 "
						"       OR EXISTS (SELECT FROM unnest(t.required) AS q WHERE q ~ $2)) "
						"ORDER BY 1, 2 LIMIT 1",
						2, types, values, NULL, false, 0, SPI_OK_SELECT);
		if (SPI_processed > 0)
		{
			char	   *template = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
			char	   *rule = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);

			ereport(ERROR,
					(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
					 errmsg("cannot rename column \"%s\" of table \"%s\": template \"%s\" of rule \"%s\" uses it",
							rc->oldname, get_rel_name(rc->relid), template, rule),
					 errdetail("Messages are rendered with the row as it is, where the column is now \"%s\": "
							   "row.%s would render empty.", rc->newname, rc->oldname),
					 errhint("Change the template to use row.%s in the same transaction as the rename, "
							 "with reminder.create_template().", rc->newname)));
		}
	}
	SPI_finish();
	PopActiveSnapshot();
	owner_leave(&ext);
}

static void
rename_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			/* an error aborts the transaction, which forgets them */
			if (renamed_columns != NIL)
				check_renamed_columns();
			break;
		default:
			renamed_columns = NIL;
			break;
	}
}

static void
remember_renamed_column(Oid relid, const char *oldname, const char *newname)
{
	MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);
	RenamedColumn *rc = palloc(sizeof(RenamedColumn));

	if (!rename_callback_registered)
	{
		RegisterXactCallback(rename_xact_callback, NULL);
		rename_callback_registered = true;
	}
	rc->relid = relid;
	rc->oldname = pstrdup(oldname);
	rc->newname = pstrdup(newname);
	renamed_columns = lappend(renamed_columns, rc);
	MemoryContextSwitchTo(old);
}

/*
 * ddl_command_end for ALTER TABLE: after RENAME of a watched table or of
 * one of its columns, rewrite the rules' stored expressions and column
 * names to the new names.  A renamed column is checked against the rules'
 * templates at commit.
 */
Datum
reminder_watch_ddl_end(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;
	RenameStmt *stmt;
	RenameWalk	rw = {0};
	OwnerContext ext;
	Oid			relid;
	uint64		n;
	int64	   *ids;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("reminder.watch_ddl_end() must be called as an event trigger")));
	trigdata = (EventTriggerData *) fcinfo->context;
	if (!IsA(trigdata->parsetree, RenameStmt))
		PG_RETURN_VOID();
	stmt = (RenameStmt *) trigdata->parsetree;
	if (stmt->renameType != OBJECT_COLUMN && stmt->renameType != OBJECT_TABLE)
		PG_RETURN_VOID();
	if (stmt->renameType == OBJECT_COLUMN && stmt->relationType != OBJECT_TABLE)
		PG_RETURN_VOID();

	owner_enter(&ext, extension_owner(), OWNER_PIN_SEARCH_PATH);
	SPI_connect();

	spi_exec_expect("SELECT r.id, r.table_name::oid FROM reminder.rule r "
					"WHERE r.table_name IN (SELECT objid FROM pg_event_trigger_ddl_commands() "
					"                       WHERE classid = 'pg_class'::regclass)",
					0, NULL, NULL, NULL, false, 0, SPI_OK_SELECT);
	n = SPI_processed;
	if (n > 0)
	{
		bool		isnull;

		ids = palloc(sizeof(int64) * n);
		for (uint64 i = 0; i < n; i++)
			ids[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		relid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));

		rw.rel = relation_open(relid, AccessShareLock);
		rw.table = stmt->renameType == OBJECT_TABLE;
		rw.oldname = rw.table ? stmt->relation->relname : stmt->subname;
		rw.newname = stmt->newname;
		for (uint64 i = 0; i < n; i++)
			rename_rule(&rw, ids[i]);
		relation_close(rw.rel, AccessShareLock);
		if (!rw.table)
			remember_renamed_column(relid, rw.oldname, rw.newname);
	}

	SPI_finish();
	owner_leave(&ext);
	PG_RETURN_VOID();
}
