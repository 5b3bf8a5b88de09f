/*-------------------------------------------------------------------------
 *
 * template.h
 *	  Rendering Mustache templates over jsonb data (template.c).
 *
 * This is the interface the rest of the extension uses; the engine core it
 * wraps is declared in mustache.h.  All functions report problems with
 * ereport(ERROR): syntax errors as ERRCODE_SYNTAX_ERROR, bad options and
 * filters as ERRCODE_INVALID_PARAMETER_VALUE, limits as
 * ERRCODE_PROGRAM_LIMIT_EXCEEDED / ERRCODE_STATEMENT_TOO_COMPLEX.
 *
 *-------------------------------------------------------------------------
 */
#ifndef REMINDER_TEMPLATE_H
#define REMINDER_TEMPLATE_H

#include "render/mustache.h"
#include "utils/jsonb.h"

/* how {{name}} is escaped; {{{name}}}, {{&name}} and "| json" never are */
typedef enum RenderEscape
{
	RENDER_ESCAPE_HTML,			/* HTML bodies: & < > " ' as entities */
	RENDER_ESCAPE_NONE,			/* plain text: subjects, text bodies, SMS */
	RENDER_ESCAPE_JSON			/* inside a JSON string literal: webhooks */
} RenderEscape;

/* default bound on the size of one rendered text */
#define RENDER_DEFAULT_MAX_OUTPUT	(1024 * 1024)

/*
 * Options of one render.  Zero-initialize and set what you need: all-zero
 * means HTML escaping, session TimeZone, locale "en", no partials and the
 * default output limit.
 */
typedef struct RenderOptions
{
	RenderEscape escape;
	const char *time_zone;		/* NULL: session TimeZone */
	const char *locale;			/* NULL: "en"; "pl-PL" falls back to "pl" */
	Jsonb	   *partials;		/* object name -> template text; may be NULL */
	Size		max_output;		/* bytes; 0: RENDER_DEFAULT_MAX_OUTPUT */
	const char *what;			/* names the template in error messages, e.g.
								 * "body of template \"x\""; may be NULL */
} RenderOptions;

/* in template.c */

/* ereport(ERROR) unless source compiles; filters are checked too */
extern void template_check_syntax(const char *source, const char *what);

/* compile and render in one go; palloc'd result in CurrentMemoryContext */
extern char *template_render(const char *source, Jsonb *data,
							 const RenderOptions *opts);

/*
 * Compile once, render many (the worker).  The template lives in its own
 * memory context under CurrentMemoryContext; mustache_free() releases it.
 */
extern MustacheTemplate *template_compile(const char *source,
										  const char *what);
extern char *template_render_compiled(const MustacheTemplate *tpl,
									  Jsonb *data,
									  const RenderOptions *opts);

/* true when the dotted name resolves to a non-null value in data */
extern bool template_data_has(Jsonb *data, const char *dotted_name);

/* 'html' | 'none' | 'json', else ereport(ERROR) */
extern RenderEscape template_parse_escape(const char *name);

#endif							/* REMINDER_TEMPLATE_H */
