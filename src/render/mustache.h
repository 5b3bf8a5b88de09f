/*-------------------------------------------------------------------------
 *
 * mustache.h
 *	  Mustache template engine: the core.
 *
 * The core parses a template into a flat node array once and renders it
 * any number of times.  It knows nothing of jsonb or of SQL: data is read
 * through MustacheCallbacks, errors come back as MustacheError values, and
 * the only PostgreSQL facilities used are palloc/MemoryContext and
 * StringInfo, so the file also builds outside the server for fuzzing (see
 * test/fuzz/).  The PostgreSQL glue (jsonb adapter, filters, ereport) is in
 * template.c / template.h.
 *
 * Implements the Mustache spec modules interpolation, sections, inverted,
 * comments, partials and delimiters.  Lambdas are not supported: the data
 * is JSON, which cannot hold code.  Extensions: filters after '|' in
 * variable tags, array indexes in dotted names.  See docs/templates.md.
 *
 *-------------------------------------------------------------------------
 */
#ifndef REMINDER_MUSTACHE_H
#define REMINDER_MUSTACHE_H

#include "lib/stringinfo.h"

/* deepest section nesting a template may have */
#define MUSTACHE_MAX_NESTING		100
/* default bound on partials within partials (recursion) */
#define MUSTACHE_DEFAULT_PARTIAL_DEPTH	64

typedef struct MustacheTemplate MustacheTemplate;

/* What a value is; MISSING is the result of a failed lookup. */
typedef enum MustacheKind
{
	MUSTACHE_MISSING = 0,
	MUSTACHE_NULL,
	MUSTACHE_FALSE,
	MUSTACHE_TRUE,
	MUSTACHE_NUMBER,
	MUSTACHE_STRING,
	MUSTACHE_ARRAY,
	MUSTACHE_OBJECT
} MustacheKind;

/*
 * A reference to a value of the data source.  For strings, ptr/len are the
 * bytes (not NUL-terminated); for the other kinds they belong to the data
 * source (e.g. a JsonbContainer or Numeric pointer).  Values are passed by
 * value and never freed by the core.
 */
typedef struct MustacheValue
{
	MustacheKind kind;
	const void *ptr;
	size_t		len;
} MustacheValue;

/* How {{name}} output is escaped; {{{name}}} and {{&name}} never are. */
typedef enum MustacheEscape
{
	MUSTACHE_ESCAPE_HTML,		/* & < > " ' as entities */
	MUSTACHE_ESCAPE_NONE,		/* plain text */
	MUSTACHE_ESCAPE_JSON		/* inside a JSON string literal */
} MustacheEscape;

typedef enum MustacheFilterKind
{
	MUSTACHE_FILTER_EXTERNAL,	/* implemented through the callbacks */
	MUSTACHE_FILTER_JSON,		/* value as a JSON literal, never escaped */
	MUSTACHE_FILTER_DEFAULT		/* fallback text for missing/null/"" */
} MustacheFilterKind;

/* One argument of a filter: positional (key NULL) or key=value. */
typedef struct MustacheFilterArg
{
	const char *key;
	const char *value;			/* NUL-terminated, quotes removed */
	bool		quoted;			/* value was written as a string literal */
	bool		is_name;		/* set by prepare_filter: value is a dotted
								 * name, resolved in the render's context
								 * like a tag's and passed to apply_filter */
} MustacheFilterArg;

/* A filter as written in a tag: {{ name | filter arg key=value }} */
typedef struct MustacheFilter
{
	MustacheFilterKind kind;
	const char *name;
	int			nargs;
	MustacheFilterArg *args;
	const char *tag_name;		/* the variable the filter applies to */
	const char *partial;		/* partial the tag is in; NULL: template */
	int			line;			/* position of the tag, 1-based */
	int			column;
	void	   *extra;			/* for prepare_filter, lives with template */
} MustacheFilter;

typedef enum MustacheErrorCode
{
	MUSTACHE_OK = 0,
	MUSTACHE_ERROR_SYNTAX,		/* template (or partial) does not parse */
	MUSTACHE_ERROR_DEPTH,		/* nesting or partial recursion too deep */
	MUSTACHE_ERROR_LIMIT		/* output or work limit exceeded */
} MustacheErrorCode;

/* An error as data; strings are palloc'd in the caller's context. */
typedef struct MustacheError
{
	MustacheErrorCode code;
	char	   *message;		/* lowercase, no final period */
	char	   *hint;			/* full sentence, or NULL */
	int			line;			/* 1-based; 0 when not about a position */
	int			column;
	char	   *partial;		/* partial the error is in; NULL: template */
} MustacheError;

/*
 * How the core reaches the data and the outside world.  All callbacks get
 * the `arg` of the MustacheEnv.  Callbacks may throw (ereport): the core
 * keeps no resources other than memory in the current context.
 */
typedef struct MustacheCallbacks
{
	/* object member by key; false when absent */
	bool		(*lookup) (void *arg, const MustacheValue *object,
						   const char *key, size_t keylen,
						   MustacheValue *result);
	/* array length and element */
	size_t		(*array_length) (void *arg, const MustacheValue *array);
	void		(*array_element) (void *arg, const MustacheValue *array,
								  size_t index, MustacheValue *result);
	/* append NUMBER (plain decimal), ARRAY or OBJECT (JSON text) to out */
	void		(*append_text) (void *arg, const MustacheValue *value,
								StringInfo out);
	/* source of a partial; false when there is none (renders as empty) */
	bool		(*partial) (void *arg, const char *name, size_t namelen,
							const char **source, size_t *sourcelen);
	/*
	 * Called once per external filter when a template or partial is
	 * compiled, in the template's memory context (set filter->extra);
	 * NULL accepts every filter.
	 */
	void		(*prepare_filter) (void *arg, MustacheFilter *filter);
	/*
	 * apply an external filter; the result must stay valid during render.
	 * argv is NULL unless an argument is_name; then argv[i] is the value
	 * args[i] names (MISSING for the other arguments).
	 */
	void		(*apply_filter) (void *arg, const MustacheFilter *filter,
								 const MustacheValue *input,
								 const MustacheValue *argv,
								 MustacheValue *result);
	/* called on every recursion and loop step (stack depth, interrupts) */
	void		(*check) (void *arg);
} MustacheCallbacks;

typedef struct MustacheEnv
{
	const MustacheCallbacks *cb;
	void	   *arg;
	MustacheEscape escape;
	size_t		max_output;		/* bytes; 0: unlimited */
	uint64		max_steps;		/* nodes visited; 0: unlimited */
	int			max_partial_depth;	/* 0: MUSTACHE_DEFAULT_PARTIAL_DEPTH */
} MustacheEnv;

/*
 * Compile source (len bytes).  Returns NULL and fills *err on a syntax
 * error.  The template lives in its own memory context, a child of
 * CurrentMemoryContext; env may be NULL (then filters are not prepared).
 */
extern MustacheTemplate *mustache_compile(const char *source, size_t len,
										  const MustacheEnv *env,
										  MustacheError *err);
extern void mustache_free(MustacheTemplate *tpl);

/*
 * Render tpl against data, appending to out.  Returns false and fills *err
 * on failure (out then holds partial output).  Partials are compiled on
 * first use and cached for the duration of the call.
 */
extern bool mustache_render(const MustacheTemplate *tpl,
							const MustacheValue *data,
							const MustacheEnv *env,
							StringInfo out, MustacheError *err);

/* Resolve a dotted name against data alone (no context stack). */
extern void mustache_resolve(const MustacheCallbacks *cb, void *arg,
							 const MustacheValue *data,
							 const char *name, size_t len,
							 MustacheValue *result);

/* Escape-append helpers, shared with the glue. */
extern void mustache_append_json_string(StringInfo out, const char *s,
										size_t len, bool quotes);
extern void mustache_append_html(StringInfo out, const char *s, size_t len);

#endif							/* REMINDER_MUSTACHE_H */
