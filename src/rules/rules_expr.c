/*-------------------------------------------------------------------------
 *
 * rules_expr.c
 *	  SQL expressions over the row of a watched table: the condition, the
 *	  stop condition, and whatever part of a recipient varies per row.
 *
 *	  An expression arrives as text.  It must parse as exactly one
 *	  expression (no second statement, no FROM, no subquery), refer only to
 *	  the table's columns, have the type its setting needs, and call no
 *	  volatile function, so evaluating it can never change anything.  It is
 *	  stored deparsed with search_path = pg_catalog: every name outside
 *	  pg_catalog is schema-qualified, so the stored text means the same
 *	  thing whatever search_path a later session has.  It is parsed again
 *	  with that same search_path when a backend compiles the rule.
 *
 *	  Evaluating an expression runs code of the table's owner (the
 *	  functions it calls, its table's row security policies) inside
 *	  sessions that belong to others: the session writing the row, where
 *	  the trigger then writes messages as the extension's owner, and the
 *	  background worker, connected as a superuser.  Such code runs in an
 *	  owner scope (owner_enter() with OWNER_RESTRICTED, in owner.c): as the
 *	  owner, in a security-restricted operation (no SET ROLE, no temporary
 *	  tables, no LISTEN), and under a GUC nest level that is rolled back
 *	  when the scope ends, so that a set_config() anywhere inside changes
 *	  nothing for the code that runs after it.  Calls that can only change
 *	  the session's state are refused when the rule is created.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/sysattr.h"
#include "access/transam.h"
#include "catalog/dependency.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parse_coerce.h"
#include "parser/parse_collate.h"
#include "parser/parse_expr.h"
#include "parser/parse_node.h"
#include "parser/parse_relation.h"
#include "parser/parser.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/ruleutils.h"

#include "reminder.h"
#include "rules/rules.h"

typedef struct ExprErrorContext
{
	const char *text;
	const char *what;
	const char *rule;
} ExprErrorContext;

/*
 * Errors inside an expression point into the expression, not into the
 * statement that called watch(): psql shows it as the QUERY with a cursor.
 */
static void
expr_error_callback(void *arg)
{
	ExprErrorContext *c = arg;
	int			pos = geterrposition();

	if (pos > 0)
	{
		errposition(0);
		internalerrposition(pos);
		internalerrquery(c->text);
	}
	if (c->rule)
		errcontext("%s of rule \"%s\"", c->what, c->rule);
	else
		errcontext("%s", c->what);
}

/*
 * Pin search_path to pg_catalog for parsing, deparsing and running rule
 * expressions and the extension's own statements.  Undo with
 * rule_unpin(the returned level); an error undoes it anyway.
 */
int
rule_pin_search_path(void)
{
	int			level = NewGUCNestLevel();

	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return level;
}

/*
 * End a level of rule_pin_search_path() (or NewGUCNestLevel()): every
 * setting changed since, by us or by anything we called, goes back to
 * what it was, as at the end of a security-restricted operation.
 */
void
rule_unpin(int level)
{
	AtEOXact_GUC(false, level);
}

/*
 * Within a level from rule_pin_search_path(): dates and intervals in
 * stored rules are written the same way whatever the session's styles,
 * and ISO dates read back the same under any DateStyle.
 */
void
rule_pin_styles(void)
{
	(void) set_config_option("DateStyle", "ISO, YMD", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("IntervalStyle", "postgres", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
}

/* The one expression of text, raw, or an error. */
static Node *
raw_expression(const char *text, const char *what)
{
	List	   *raw;
	RawStmt    *rs;
	SelectStmt *sel;
	ResTarget  *rt;

	if (text == NULL || text[strspn(text, " \t\r\n")] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("%s must not be empty", what)));

	raw = raw_parser(text, RAW_PARSE_PLPGSQL_EXPR);
	rs = linitial_node(RawStmt, raw);
	sel = (SelectStmt *) rs->stmt;

	if (list_length(raw) != 1 || !IsA(sel, SelectStmt) || sel->op != SETOP_NONE ||
		list_length(sel->targetList) != 1 || sel->fromClause != NIL ||
		sel->whereClause != NULL || sel->groupClause != NIL ||
		sel->havingClause != NULL || sel->windowClause != NIL ||
		sel->sortClause != NIL || sel->limitCount != NULL ||
		sel->limitOffset != NULL || sel->lockingClause != NIL ||
		sel->distinctClause != NIL || sel->intoClause != NULL ||
		sel->withClause != NULL || sel->valuesLists != NIL)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("%s must be a single SQL expression", what),
				 errdetail("It may refer to the columns of the table, but not have a FROM, WHERE or other clause, or a second expression."),
				 errhint("Write for example: status = 'confirmed' AND remind_client")));

	rt = linitial_node(ResTarget, sel->targetList);
	return rt->val;
}

/*
 * Functions whose only effect is on the session that calls them: its
 * settings, its session-level locks, its connections to other servers.
 * A rule expression runs in other people's sessions and in the worker.
 */
static bool
changes_session(Oid func, void *context)
{
	Oid			ext;

	switch (func)
	{
		case F_SET_CONFIG:
		case F_PG_ADVISORY_LOCK_INT8:
		case F_PG_ADVISORY_LOCK_SHARED_INT8:
		case F_PG_TRY_ADVISORY_LOCK_INT8:
		case F_PG_TRY_ADVISORY_LOCK_SHARED_INT8:
		case F_PG_ADVISORY_UNLOCK_INT8:
		case F_PG_ADVISORY_UNLOCK_SHARED_INT8:
		case F_PG_ADVISORY_LOCK_INT4_INT4:
		case F_PG_ADVISORY_LOCK_SHARED_INT4_INT4:
		case F_PG_TRY_ADVISORY_LOCK_INT4_INT4:
		case F_PG_TRY_ADVISORY_LOCK_SHARED_INT4_INT4:
		case F_PG_ADVISORY_UNLOCK_INT4_INT4:
		case F_PG_ADVISORY_UNLOCK_SHARED_INT4_INT4:
		case F_PG_ADVISORY_UNLOCK_ALL:
			*(Oid *) context = func;
			return true;
	}
	ext = getExtensionOfObject(ProcedureRelationId, func);
	if (OidIsValid(ext) && strcmp(get_extension_name(ext), "dblink") == 0)
	{
		*(Oid *) context = func;
		return true;
	}
	return false;
}

static bool
session_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (check_functions_in_node(node, changes_session, context))
		return true;
	return expression_tree_walker(node, session_walker, context);
}

/* A built-in base type: its operators are the server's own C code. */
static bool
builtin_base_type(Oid type)
{
	return type < FirstGenbkiObjectId && get_typtype(type) == TYPTYPE_BASE;
}

static bool
runs_code_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	switch (nodeTag(node))
	{
		case T_Var:
		case T_Const:
		case T_RelabelType:
		case T_BoolExpr:
		case T_NullTest:
		case T_BooleanTest:
		case T_ArrayExpr:
		case T_CoalesceExpr:
			break;
		case T_OpExpr:
		case T_DistinctExpr:
		case T_NullIfExpr:
		case T_ScalarArrayOpExpr:
			{
				List	   *args;
				Oid			func;
				ListCell   *lc;

				if (IsA(node, ScalarArrayOpExpr))
				{
					set_sa_opfuncid((ScalarArrayOpExpr *) node);
					func = ((ScalarArrayOpExpr *) node)->opfuncid;
					args = ((ScalarArrayOpExpr *) node)->args;
				}
				else
				{
					set_opfuncid((OpExpr *) node);
					func = ((OpExpr *) node)->opfuncid;
					args = ((OpExpr *) node)->args;
				}
				if (func >= FirstGenbkiObjectId)
					return true;
				foreach(lc, args)
					if (!builtin_base_type(exprType(lfirst(lc))))
						return true;
				break;
			}
		default:
			return true;
	}
	return expression_tree_walker(node, runs_code_walker, context);
}

/*
 * Whether evaluating a planned expression may run code other than the
 * server's own: any function call, any operator or type that is not
 * built in.  One that cannot (columns, constants, comparisons and
 * arithmetic of built-in types, AND/OR/NOT, IS NULL) needs no owner scope.
 */
bool
rule_expr_runs_code(Node *expr)
{
	return runs_code_walker(expr, NULL);
}

/* Reject what a rule expression may not contain, once transformed. */
static void
check_transformed(ParseState *pstate, Node *expr, const char *what)
{
	Bitmapset  *attrs = NULL;
	int			x = -1;
	Oid			func = InvalidOid;

	if (pstate->p_hasAggs)
		ereport(ERROR,
				(errcode(ERRCODE_GROUPING_ERROR),
				 errmsg("aggregate functions are not allowed in %s", what)));
	if (pstate->p_hasWindowFuncs)
		ereport(ERROR,
				(errcode(ERRCODE_WINDOWING_ERROR),
				 errmsg("window functions are not allowed in %s", what)));
	if (pstate->p_hasTargetSRFs || expression_returns_set(expr))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-returning functions are not allowed in %s", what)));
	if (pstate->p_hasSubLinks)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("subqueries are not allowed in %s", what),
				 errdetail("A rule expression is computed from the row alone."),
				 errhint("Put the lookup into a STABLE function and call that.")));
	if (session_walker(expr, &func))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("%s must not call %s()", what, get_func_name(func)),
				 errdetail("%s() changes the state of the session that evaluates the expression: the session writing the row, or the background worker.",
						   get_func_name(func)),
				 errhint("A rule expression computes a value from the row; it cannot change settings, take session locks or open connections.")));
	if (contain_volatile_functions(expr))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("functions in %s must not be volatile", what),
				 errdetail("Rule expressions run inside every write to the table and must not change anything."),
				 errhint("now() is fine; random(), nextval() and functions not marked STABLE or IMMUTABLE are not.")));

	pull_varattnos(expr, 1, &attrs);
	while ((x = bms_next_member(attrs, x)) >= 0)
	{
		AttrNumber	attno = x + FirstLowInvalidHeapAttributeNumber;

		if (attno < 0)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("system columns are not allowed in %s", what)));
	}
}

static Node *
coerce_or_fail(ParseState *pstate, Node *expr, Oid target, const char *what)
{
	Oid			type = exprType(expr);
	Node	   *result;

	result = coerce_to_target_type(pstate, expr, type, target, -1,
								   COERCION_ASSIGNMENT, COERCE_IMPLICIT_CAST,
								   exprLocation(expr));
	if (result == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("%s must be of type %s, not %s", what,
						format_type_be(target), format_type_be(type)),
				 parser_errposition(pstate, exprLocation(expr))));
	return result;
}

/*
 * Transform a raw expression against rel and check it.  Returns the
 * expression of the type the setting needs; *plain, when given, gets it
 * as written (before that coercion), for storing.
 */
static Node *
transform(Relation rel, const char *text, Node *raw, RuleExprType type,
		  const char *what, Node **plain)
{
	ParseState *pstate = make_parsestate(NULL);
	ParseNamespaceItem *nsitem;
	Node	   *expr;

	pstate->p_sourcetext = text;
	nsitem = addRangeTableEntryForRelation(pstate, rel, AccessShareLock,
										   NULL, false, false);
	addNSItemToQuery(pstate, nsitem, false, true, true);

	expr = transformExpr(pstate, raw, EXPR_KIND_SELECT_TARGET);
	check_transformed(pstate, expr, what);

	/* literals get a type of their own, so the stored text says it */
	if (exprType(expr) == UNKNOWNOID)
		expr = coerce_or_fail(pstate, expr,
							  type == REXPR_INTERVALS ? INTERVALOID :
							  type == REXPR_TIME ? TIMESTAMPTZOID :
							  type == REXPR_BOOL ? BOOLOID :
							  type == REXPR_JSONB ? JSONBOID : TEXTOID, what);
	assign_expr_collations(pstate, expr);
	if (plain)
		*plain = expr;

	switch (type)
	{
		case REXPR_BOOL:
			expr = coerce_to_boolean(pstate, expr, what);
			break;
		case REXPR_TEXT:
			expr = coerce_or_fail(pstate, expr, TEXTOID, what);
			break;
		case REXPR_JSONB:
			expr = coerce_or_fail(pstate, expr, JSONBOID, what);
			break;
		case REXPR_ANY_JSONB:
			if (exprType(expr) != JSONBOID)
				expr = (Node *) makeFuncExpr(F_TO_JSONB, JSONBOID, list_make1(expr),
											 InvalidOid, InvalidOid,
											 COERCE_EXPLICIT_CALL);
			break;
		case REXPR_TIME:
			if (exprType(expr) != TIMESTAMPTZOID && exprType(expr) != TIMESTAMPOID &&
				exprType(expr) != DATEOID)
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("%s must be of type timestamptz, timestamp or date, not %s",
								what, format_type_be(exprType(expr))),
						 errhint("Name a column such as \"starts_at\".")));
			break;
		case REXPR_INTERVALS:
			if (exprType(expr) == INTERVALOID)
			{
				ArrayExpr  *a = makeNode(ArrayExpr);

				a->array_typeid = INTERVALARRAYOID;
				a->element_typeid = INTERVALOID;
				a->elements = list_make1(expr);
				a->multidims = false;
				a->location = -1;
				expr = (Node *) a;
			}
			else
				expr = coerce_or_fail(pstate, expr, INTERVALARRAYOID, what);
			break;
	}
	assign_expr_collations(pstate, expr);
	free_parsestate(pstate);
	return expr;
}

/*
 * Parse and check text as an expression over rel's row for a setting of
 * the given type; returns it transformed, not yet planned.  Errors say
 * what ("condition", "recipient 2 \"to\"") and which rule.
 */
Node *
rule_expr_parse(Relation rel, const char *text, RuleExprType type,
				const char *what, const char *rule_name)
{
	ErrorContextCallback errcb;
	ExprErrorContext ctx = {text, what, rule_name};
	Node	   *expr;

	errcb.callback = expr_error_callback;
	errcb.arg = &ctx;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;

	expr = transform(rel, text, raw_expression(text, what), type, what, NULL);

	error_context_stack = errcb.previous;
	return expr;
}

/* Deparse an expression over rel, names outside pg_catalog qualified. */
char *
rule_expr_deparse(Node *expr, Relation rel)
{
	int			level = rule_pin_search_path();
	char	   *text;

	rule_pin_styles();
	text = deparse_expression(expr,
							  deparse_context_for(RelationGetRelationName(rel),
												  RelationGetRelid(rel)),
							  false, false);
	rule_unpin(level);
	return text;
}

/*
 * The canonical text of an expression: checked, then deparsed so that it
 * reads the same under any search_path.  Parsing the result must give the
 * same expression back; if deparsing lost something, say so rather than
 * store a rule that means something else.
 */
char *
rule_expr_canonical(Relation rel, const char *text, RuleExprType type,
					const char *what, const char *rule_name, Node **result)
{
	ErrorContextCallback errcb;
	ExprErrorContext ctx = {text, what, rule_name};
	Node	   *plain;
	Node	   *expr;
	Node	   *again;
	char	   *canonical;
	int			level;

	errcb.callback = expr_error_callback;
	errcb.arg = &ctx;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;

	level = rule_pin_search_path();
	expr = transform(rel, text, raw_expression(text, what), type, what, &plain);
	canonical = rule_expr_deparse(plain, rel);
	again = transform(rel, canonical, raw_expression(canonical, what), type, what, NULL);
	rule_unpin(level);

	if (!equal(expr, again))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s cannot be stored faithfully", what),
				 errdetail("It reads back as: %s", canonical),
				 errhint("Write it with explicit casts or schema-qualified names.")));

	error_context_stack = errcb.previous;
	if (result)
		*result = expr;
	return canonical;
}

typedef struct RenameContext
{
	const char *oldname;
	const char *newname;
	bool		table;
	Relation	rel;
} RenameContext;

static bool
rename_walker(Node *node, RenameContext *ctx)
{
	if (node == NULL)
		return false;
	if (IsA(node, ColumnRef))
	{
		ColumnRef  *cref = (ColumnRef *) node;
		Node	   *first = linitial(cref->fields);

		if (!IsA(first, String) || strcmp(strVal(first), ctx->oldname) != 0)
			return false;
		if (ctx->table)
		{
			/* "t.col", "t.*", or "t" alone when no column is called t */
			if (list_length(cref->fields) > 1 ||
				get_attnum(RelationGetRelid(ctx->rel), ctx->oldname) == InvalidAttrNumber)
				linitial(cref->fields) = makeString(pstrdup(ctx->newname));
		}
		else if (list_length(cref->fields) == 1)
			linitial(cref->fields) = makeString(pstrdup(ctx->newname));
		return false;
	}
	return raw_expression_tree_walker(node, rename_walker, (void *) ctx);
}

/*
 * The canonical text of a stored expression after the table (table =
 * true) or one of its columns was renamed from oldname to newname.
 */
char *
rule_expr_rename(Relation rel, const char *text, const char *oldname,
				 const char *newname, bool table)
{
	RenameContext ctx = {oldname, newname, table, rel};
	Node	   *raw;
	Node	   *plain;
	char	   *result;
	int			level = rule_pin_search_path();

	raw = raw_expression(text, "expression");
	(void) rename_walker(raw, &ctx);
	(void) transform(rel, text, raw, REXPR_ANY_JSONB, "expression", &plain);
	result = rule_expr_deparse(plain, rel);
	rule_unpin(level);
	return result;
}
