/*-------------------------------------------------------------------------
 *
 * mustache.c
 *	  Mustache template engine: parser and renderer.
 *
 * A template compiles to a flat array of nodes.  A section node records
 * the index just past its body, so rendering walks ranges of the array and
 * recursion depth equals section nesting.  Parsing is a single left-to-right
 * scan with an explicit stack of open sections.
 *
 * Only palloc/MemoryContext and StringInfo are used from PostgreSQL; no
 * ereport: errors are returned as MustacheError.  Keep it that way, the
 * fuzz harness links this file against a small shim (test/fuzz/).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "render/mustache.h"
#include "utils/memutils.h"

#define NOT_FOUND	((size_t) -1)

typedef enum MNodeType
{
	NODE_TEXT,
	NODE_VAR,
	NODE_SECTION,
	NODE_INVERTED,
	NODE_PARTIAL
} MNodeType;

/* one part of a dotted name */
typedef struct Segment
{
	const char *s;
	size_t		len;
} Segment;

typedef struct MNode
{
	MNodeType	type;
	bool		escape;			/* VAR: {{x}}, not {{{x}}} or {{&x}} */
	int			end;			/* SECTION/INVERTED: index past the body */
	const char *text;			/* TEXT: bytes; otherwise the name */
	size_t		len;
	Segment    *segs;			/* dotted name; nsegs 0 means "." */
	int			nsegs;
	const char *indent;			/* PARTIAL: standalone indentation */
	size_t		indentlen;
	int			first_filter;	/* VAR: index into filters */
	int			nfilters;
	size_t		offset;			/* of the tag in the source, for errors */
} MNode;

struct MustacheTemplate
{
	MemoryContext cxt;
	char	   *source;			/* private copy; nodes point into it */
	size_t		len;
	MNode	   *nodes;
	int			nnodes;
	int			maxnodes;
	MustacheFilter *filters;
	int			nfilters;
	int			maxfilters;
	const char *partial;		/* name when compiled as a partial */
	size_t		indentlen;		/* indentation added to a partial's lines */
};

/* a place in a source text: byte offset, 1-based line and column */
typedef struct Position
{
	size_t		offset;
	int			line;
	int			column;			/* in characters */
} Position;

typedef struct Parser
{
	MustacheTemplate *t;
	const char *src;
	size_t		len;
	const char *otag;			/* current delimiters */
	size_t		olen;
	const char *ctag;
	size_t		clen;
	char	   *triple_close;	/* "}" + ctag */
	int			open[MUSTACHE_MAX_NESTING];
	int			depth;
	Position	cursor;			/* for line and column of tags */
	const MustacheEnv *env;
	MustacheError *err;
	MemoryContext errcxt;		/* where error strings go */
} Parser;

/* a partial compiled during one render */
typedef struct PartialEntry
{
	const char *name;
	size_t		namelen;
	const char *indent;
	size_t		indentlen;
	MustacheTemplate *tpl;		/* NULL: no such partial */
	struct PartialEntry *next;
} PartialEntry;

typedef struct Renderer
{
	const MustacheEnv *env;
	const MustacheCallbacks *cb;
	void	   *arg;
	StringInfo	out;
	MustacheError *err;
	MustacheValue *stack;		/* context stack, top at depth - 1 */
	int			depth;
	int			maxdepth;
	int			partial_depth;
	int			max_partial_depth;
	uint64		steps;
	PartialEntry *partials;
	StringInfoData scratch;
	MemoryContext errcxt;
} Renderer;

static MustacheTemplate *compile_internal(const char *source, size_t len,
										  const MustacheEnv *env,
										  MustacheError *err,
										  const char *partial,
										  size_t indentlen);
static bool render_nodes(Renderer *r, const MustacheTemplate *t,
						 int from, int to);


/* ----------------------------------------------------------------
 *		Small helpers
 * ----------------------------------------------------------------
 */

static inline bool
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
		c == '\v' || c == '\f';
}

/* first occurrence of needle in s[from..len), or NOT_FOUND */
static size_t
find(const char *s, size_t len, size_t from, const char *needle, size_t nlen)
{
	while (from + nlen <= len)
	{
		const char *hit = memchr(s + from, needle[0], len - from - nlen + 1);

		if (hit == NULL)
			break;
		from = hit - s;
		if (memcmp(hit, needle, nlen) == 0)
			return from;
		from++;
	}
	return NOT_FOUND;
}

static void
trim(const char *s, size_t *start, size_t *end)
{
	while (*start < *end && is_space(s[*start]))
		(*start)++;
	while (*end > *start && is_space(s[*end - 1]))
		(*end)--;
}

static bool
has_space(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (is_space(s[i]))
			return true;
	return false;
}

/*
 * Move pos to offset.  The parser asks for increasing offsets, so counting
 * on from the last answer keeps the whole parse linear.
 */
static void
advance(const char *s, Position *pos, size_t offset)
{
	if (pos->line == 0 || offset < pos->offset)
	{
		pos->offset = 0;
		pos->line = 1;
		pos->column = 1;
	}
	for (size_t i = pos->offset; i < offset; i++)
	{
		if (s[i] == '\n')
		{
			pos->line++;
			pos->column = 1;
		}
		else if ((s[i] & 0xC0) != 0x80)
			pos->column++;
	}
	pos->offset = offset;
}

static void
template_position(const MustacheTemplate *t, Position *pos, size_t offset,
				  int *line, int *column)
{
	advance(t->source, pos, offset);
	*line = pos->line;
	*column = pos->column;
	/* report columns of the partial as written, without the indentation */
	if (t->indentlen > 0 && *column > (int) t->indentlen)
		*column -= (int) t->indentlen;
}

/* bytes of the first at most max bytes of s that end on a UTF-8 boundary */
static int
utf8_clip(const char *s, size_t len, size_t max)
{
	if (len <= max)
		return (int) len;
	while (max > 0 && (s[max] & 0xC0) == 0x80)
		max--;
	return (int) max;
}


/* ----------------------------------------------------------------
 *		Parser
 * ----------------------------------------------------------------
 */

/* record an error at offset; msg and hint are copied to errcxt */
static bool
parse_error(Parser *p, MustacheErrorCode code, size_t offset,
			const char *msg, const char *hint)
{
	MustacheError *err = p->err;

	err->code = code;
	err->message = MemoryContextStrdup(p->errcxt, msg);
	err->hint = hint ? MemoryContextStrdup(p->errcxt, hint) : NULL;
	template_position(p->t, &p->cursor, offset, &err->line, &err->column);
	err->partial = p->t->partial ? MemoryContextStrdup(p->errcxt, p->t->partial) : NULL;
	return false;
}

static MNode *
add_node(Parser *p, MNodeType type, size_t offset)
{
	MustacheTemplate *t = p->t;
	MNode	   *n;

	if (t->nnodes == t->maxnodes)
	{
		t->maxnodes *= 2;
		t->nodes = repalloc(t->nodes, sizeof(MNode) * t->maxnodes);
	}
	n = &t->nodes[t->nnodes++];
	memset(n, 0, sizeof(MNode));
	n->type = type;
	n->offset = offset;
	return n;
}

static void
add_text(Parser *p, size_t start, size_t end)
{
	MNode	   *n;

	if (end <= start)
		return;
	n = add_node(p, NODE_TEXT, start);
	n->text = p->src + start;
	n->len = end - start;
}

/* check a tag's name and split it on dots */
static bool
set_name(Parser *p, MNode *n, size_t start, size_t end, size_t tagstart,
		 const char *what)
{
	const char *s = p->src + start;
	size_t		len = end - start;
	int			nsegs;

	if (len == 0)
		return parse_error(p, MUSTACHE_ERROR_SYNTAX, tagstart,
						   psprintf("%s without a name", what),
						   "Write a name inside the tag, for example {{name}}.");
	if (has_space(s, len))
		return parse_error(p, MUSTACHE_ERROR_SYNTAX, tagstart,
						   psprintf("invalid name \"%.*s\" in %s", (int) len, s, what),
						   "Names cannot contain spaces; use dots for nested values, for example {{person.name}}.");
	n->text = s;
	n->len = len;
	if (len == 1 && s[0] == '.')
		return true;			/* implicit iterator: no segments */

	nsegs = 1;
	for (size_t i = 0; i < len; i++)
		if (s[i] == '.')
			nsegs++;
	n->segs = palloc(sizeof(Segment) * nsegs);
	n->nsegs = 0;
	for (size_t i = 0, segstart = 0; i <= len; i++)
	{
		if (i == len || s[i] == '.')
		{
			n->segs[n->nsegs].s = s + segstart;
			n->segs[n->nsegs].len = i - segstart;
			n->nsegs++;
			segstart = i + 1;
		}
	}
	return true;
}

static bool
is_ident_char(char c, bool first)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
		return true;
	return !first && c >= '0' && c <= '9';
}

/* parse a quoted string at src[*i]; backslash escapes the quote and itself */
static bool
parse_quoted(Parser *p, size_t *i, size_t end, size_t tagstart, char **result)
{
	char		q = p->src[*i];
	StringInfoData buf;

	initStringInfo(&buf);
	for ((*i)++; *i < end; (*i)++)
	{
		char		c = p->src[*i];

		if (c == '\\' && *i + 1 < end &&
			(p->src[*i + 1] == q || p->src[*i + 1] == '\\'))
			c = p->src[++(*i)];
		else if (c == q)
		{
			(*i)++;
			*result = buf.data;
			return true;
		}
		appendStringInfoChar(&buf, c);
	}
	return parse_error(p, MUSTACHE_ERROR_SYNTAX, tagstart,
					   "unterminated string in filter arguments",
					   psprintf("Close the string with %c.", q));
}

/* a bare filter argument: up to whitespace, '|', '=' or a quote */
static size_t
bare_end(Parser *p, size_t i, size_t end)
{
	while (i < end && !is_space(p->src[i]) && p->src[i] != '|' &&
		   p->src[i] != '=' && p->src[i] != '"' && p->src[i] != '\'')
		i++;
	return i;
}

static MustacheFilter *
add_filter(Parser *p)
{
	MustacheTemplate *t = p->t;
	MustacheFilter *f;

	if (t->filters == NULL)
	{
		t->maxfilters = 4;
		t->filters = palloc(sizeof(MustacheFilter) * t->maxfilters);
	}
	else if (t->nfilters == t->maxfilters)
	{
		t->maxfilters *= 2;
		t->filters = repalloc(t->filters, sizeof(MustacheFilter) * t->maxfilters);
	}
	f = &t->filters[t->nfilters++];
	memset(f, 0, sizeof(MustacheFilter));
	return f;
}

/*
 * Parse "| name arg key=value | name2 ..." in src[i..end) into filters of
 * node n.  Arguments are bare words or quoted strings.
 */
static bool
parse_filters(Parser *p, MNode *n, size_t i, size_t end, size_t tagstart)
{
	int			line;
	int			column;

	template_position(p->t, &p->cursor, tagstart, &line, &column);
	n->first_filter = p->t->nfilters;
	while (i < end)
	{
		MustacheFilter *f;
		size_t		nstart;
		int			maxargs;

		Assert(p->src[i] == '|');
		i++;
		while (i < end && is_space(p->src[i]))
			i++;
		nstart = i;
		while (i < end && is_ident_char(p->src[i], i == nstart))
			i++;
		if (i == nstart || (i < end && !is_space(p->src[i]) && p->src[i] != '|'))
			return parse_error(p, MUSTACHE_ERROR_SYNTAX, tagstart,
							   "missing or invalid filter name after \"|\"",
							   "Write a filter name after \"|\", for example {{ starts_at | datetime }}.");

		f = add_filter(p);
		n->nfilters++;
		f->name = pnstrdup(p->src + nstart, i - nstart);
		f->tag_name = pnstrdup(n->text, n->len);
		f->partial = p->t->partial;
		f->line = line;
		f->column = column;
		maxargs = 4;
		f->args = palloc(sizeof(MustacheFilterArg) * maxargs);

		for (;;)
		{
			MustacheFilterArg *a;
			size_t		astart;

			while (i < end && is_space(p->src[i]))
				i++;
			if (i >= end || p->src[i] == '|')
				break;
			if (f->nargs == maxargs)
			{
				maxargs *= 2;
				f->args = repalloc(f->args, sizeof(MustacheFilterArg) * maxargs);
			}
			a = &f->args[f->nargs++];
			memset(a, 0, sizeof(MustacheFilterArg));

			if (p->src[i] == '"' || p->src[i] == '\'')
			{
				if (!parse_quoted(p, &i, end, tagstart, (char **) &a->value))
					return false;
				a->quoted = true;
			}
			else
			{
				astart = i;
				i = bare_end(p, i, end);
				if (i < end && p->src[i] == '=')
				{
					if (i == astart)
						return parse_error(p, MUSTACHE_ERROR_SYNTAX, tagstart,
										   psprintf("missing argument name before \"=\" in filter \"%s\"", f->name),
										   "Write named arguments as name=value, for example tz=\"Europe/Warsaw\".");
					a->key = pnstrdup(p->src + astart, i - astart);
					i++;
					if (i < end && (p->src[i] == '"' || p->src[i] == '\''))
					{
						if (!parse_quoted(p, &i, end, tagstart, (char **) &a->value))
							return false;
						a->quoted = true;
					}
					else
					{
						astart = i;
						i = bare_end(p, i, end);
						if (i == astart)
							return parse_error(p, MUSTACHE_ERROR_SYNTAX, tagstart,
											   psprintf("missing value for argument \"%s\" of filter \"%s\"", a->key, f->name),
											   "Write named arguments as name=value, for example tz=\"Europe/Warsaw\".");
						a->value = pnstrdup(p->src + astart, i - astart);
					}
				}
				else
					a->value = pnstrdup(p->src + astart, i - astart);
			}
			/* arguments are separated by whitespace */
			if (i < end && !is_space(p->src[i]) && p->src[i] != '|')
				return parse_error(p, MUSTACHE_ERROR_SYNTAX, tagstart,
								   psprintf("unexpected character \"%c\" in arguments of filter \"%s\"", p->src[i], f->name),
								   "Separate filter arguments with spaces and quote arguments that contain spaces.");
		}

		if (strcmp(f->name, "json") == 0)
		{
			f->kind = MUSTACHE_FILTER_JSON;
			if (f->nargs != 0)
				return parse_error(p, MUSTACHE_ERROR_SYNTAX, tagstart,
								   "filter \"json\" takes no arguments",
								   "Write {{ name | json }}.");
		}
		else if (strcmp(f->name, "default") == 0)
		{
			f->kind = MUSTACHE_FILTER_DEFAULT;
			if (f->nargs != 1 || f->args[0].key != NULL)
				return parse_error(p, MUSTACHE_ERROR_SYNTAX, tagstart,
								   "filter \"default\" takes exactly one argument",
								   "Write {{ name | default \"text\" }}.");
		}
		else
		{
			f->kind = MUSTACHE_FILTER_EXTERNAL;
			if (p->env && p->env->cb->prepare_filter)
				p->env->cb->prepare_filter(p->env->arg, f);
		}
	}
	return true;
}

/* {{=<% %>=}}: content is "<% %>", already stripped of the '='s */
static bool
set_delimiters(Parser *p, size_t start, size_t end, size_t tagstart)
{
	const char *s = p->src;
	size_t		a0,
				a1,
				b0,
				b1;

	trim(s, &start, &end);
	a0 = a1 = start;
	while (a1 < end && !is_space(s[a1]))
		a1++;
	b0 = a1;
	while (b0 < end && is_space(s[b0]))
		b0++;
	b1 = b0;
	while (b1 < end && !is_space(s[b1]))
		b1++;

	if (a1 == a0 || b1 == b0 || b1 != end ||
		memchr(s + a0, '=', a1 - a0) != NULL ||
		memchr(s + b0, '=', b1 - b0) != NULL)
		return parse_error(p, MUSTACHE_ERROR_SYNTAX, tagstart,
						   "invalid set delimiter tag",
						   "Write two delimiters separated by a space, neither containing spaces or \"=\", for example {{=<% %>=}}.");

	p->otag = s + a0;
	p->olen = a1 - a0;
	p->ctag = s + b0;
	p->clen = b1 - b0;
	p->triple_close = palloc(p->clen + 2);
	p->triple_close[0] = '}';
	memcpy(p->triple_close + 1, p->ctag, p->clen);
	p->triple_close[p->clen + 1] = '\0';
	return true;
}

static bool
parse(Parser *p)
{
	const char *src = p->src;
	size_t		len = p->len;
	size_t		pos = 0;

	while (pos < len)
	{
		size_t		tagstart,
					tagend,
					cstart,
					cend,
					s,
					e;
		char		sigil = 0;
		bool		standalone = false;
		size_t		linestart = 0;
		size_t		next = 0;
		MNode	   *n;

		tagstart = find(src, len, pos, p->otag, p->olen);
		if (tagstart == NOT_FOUND)
		{
			add_text(p, pos, len);
			break;
		}

		/* the sigil; whitespace may precede it, except for a triple's '{' */
		s = tagstart + p->olen;
		if (s < len && src[s] == '{')
			sigil = '{';
		else
		{
			while (s < len && is_space(src[s]))
				s++;
			if (s < len && src[s] != '\0' && strchr("#^/>!=&<$", src[s]) != NULL)
				sigil = src[s];
			else
				s = tagstart + p->olen;
		}
		cstart = sigil ? s + 1 : s;

		if (sigil == '{')
			e = find(src, len, cstart, p->triple_close, p->clen + 1);
		else
			e = find(src, len, cstart, p->ctag, p->clen);
		if (e == NOT_FOUND)
			return parse_error(p, MUSTACHE_ERROR_SYNTAX, tagstart,
							   psprintf("unclosed tag \"%.*s\"",
										utf8_clip(src + tagstart, len - tagstart, 20),
										src + tagstart),
							   psprintf("Close the tag with \"%s\".",
										sigil == '{' ? p->triple_close :
										pnstrdup(p->ctag, p->clen)));
		cend = e;
		tagend = e + (sigil == '{' ? p->clen + 1 : p->clen);
		if (sigil == '=')
		{
			if (cend == cstart || src[cend - 1] != '=')
				return parse_error(p, MUSTACHE_ERROR_SYNTAX, tagstart,
								   "invalid set delimiter tag",
								   "A set delimiter tag ends with \"=\" before the closing delimiter, for example {{=<% %>=}}.");
			cend--;
		}

		/* standalone: alone on its line but for spaces and tabs */
		if (sigil != 0 && strchr("#^/>!=", sigil) != NULL)
		{
			linestart = tagstart;
			while (linestart > 0 &&
				   (src[linestart - 1] == ' ' || src[linestart - 1] == '\t'))
				linestart--;
			if (linestart == 0 || src[linestart - 1] == '\n')
			{
				next = tagend;
				while (next < len && (src[next] == ' ' || src[next] == '\t'))
					next++;
				if (next == len)
					standalone = true;
				else if (src[next] == '\n')
				{
					standalone = true;
					next++;
				}
				else if (src[next] == '\r' && next + 1 < len &&
						 src[next + 1] == '\n')
				{
					standalone = true;
					next += 2;
				}
			}
		}

		add_text(p, pos, standalone ? linestart : tagstart);
		pos = standalone ? next : tagend;
		if (sigil != '!')
			trim(src, &cstart, &cend);

		switch (sigil)
		{
			case '!':
				break;

			case '=':
				if (!set_delimiters(p, cstart, cend, tagstart))
					return false;
				break;

			case '#':
			case '^':
				if (p->depth >= MUSTACHE_MAX_NESTING)
					return parse_error(p, MUSTACHE_ERROR_DEPTH, tagstart,
									   psprintf("sections nested more than %d levels deep",
												MUSTACHE_MAX_NESTING),
									   psprintf("Restructure the template so that at most %d sections are open at once.",
												MUSTACHE_MAX_NESTING));
				if (memchr(src + cstart, '|', cend - cstart) != NULL)
					return parse_error(p, MUSTACHE_ERROR_SYNTAX, tagstart,
									   "filters are allowed only in variable tags",
									   "Apply the filter where the value is printed, for example {{ name | json }}.");
				n = add_node(p, sigil == '#' ? NODE_SECTION : NODE_INVERTED,
							 tagstart);
				if (!set_name(p, n, cstart, cend, tagstart, "section tag"))
					return false;
				p->open[p->depth++] = p->t->nnodes - 1;
				break;

			case '/':
				{
					MNode		closer;
					MNode	   *opener;

					memset(&closer, 0, sizeof(MNode));
					if (!set_name(p, &closer, cstart, cend, tagstart, "closing tag"))
						return false;
					if (p->depth == 0)
						return parse_error(p, MUSTACHE_ERROR_SYNTAX, tagstart,
										   psprintf("closing tag \"%.*s\" without an open section",
													(int) closer.len, closer.text),
										   "Remove the closing tag or open the section before it.");
					opener = &p->t->nodes[p->open[p->depth - 1]];
					if (closer.len != opener->len ||
						memcmp(closer.text, opener->text, closer.len) != 0)
						return parse_error(p, MUSTACHE_ERROR_SYNTAX, tagstart,
										   psprintf("closing tag \"%.*s\" does not match open section \"%.*s\"",
													(int) closer.len, closer.text,
													(int) opener->len, opener->text),
										   psprintf("Close section \"%.*s\" first.",
													(int) opener->len, opener->text));
					opener->end = p->t->nnodes;
					p->depth--;
				}
				break;

			case '>':
				n = add_node(p, NODE_PARTIAL, tagstart);
				if (!set_name(p, n, cstart, cend, tagstart, "partial tag"))
					return false;
				if (standalone)
				{
					n->indent = src + linestart;
					n->indentlen = tagstart - linestart;
				}
				break;

			case '<':
			case '$':
				return parse_error(p, MUSTACHE_ERROR_SYNTAX, tagstart,
								   "template inheritance tags are not supported",
								   "Use partials ({{> name}}) instead of {{<parent}} and {{$block}}.");

			default:			/* variable: none, '&' or '{' */
				{
					const char *bar;
					size_t		nend = cend;

					n = add_node(p, NODE_VAR, tagstart);
					n->escape = (sigil == 0);
					bar = memchr(src + cstart, '|', cend - cstart);
					if (bar != NULL)
					{
						nend = bar - src;
						trim(src, &cstart, &nend);
					}
					if (!set_name(p, n, cstart, nend, tagstart, "variable tag"))
						return false;
					if (bar != NULL &&
						!parse_filters(p, n, bar - src, cend, tagstart))
						return false;
				}
				break;
		}
	}

	if (p->depth > 0)
	{
		MNode	   *opener = &p->t->nodes[p->open[p->depth - 1]];

		return parse_error(p, MUSTACHE_ERROR_SYNTAX, opener->offset,
						   psprintf("unclosed section \"%.*s\"",
									(int) opener->len, opener->text),
						   psprintf("Close it with %.*s/%.*s%.*s.",
									(int) p->olen, p->otag,
									(int) opener->len, opener->text,
									(int) p->clen, p->ctag));
	}
	return true;
}

static MustacheTemplate *
compile_internal(const char *source, size_t len, const MustacheEnv *env,
				 MustacheError *err, const char *partial, size_t indentlen)
{
	MemoryContext errcxt = CurrentMemoryContext;
	MemoryContext cxt;
	MemoryContext oldcxt;
	MustacheTemplate *t;
	Parser		p;
	bool		ok;

	cxt = AllocSetContextCreate(CurrentMemoryContext, "mustache template",
								ALLOCSET_SMALL_SIZES);
	oldcxt = MemoryContextSwitchTo(cxt);

	t = palloc0(sizeof(MustacheTemplate));
	t->cxt = cxt;
	t->source = palloc(len + 1);
	memcpy(t->source, source, len);
	t->source[len] = '\0';
	t->len = len;
	t->maxnodes = 16;
	t->nodes = palloc(sizeof(MNode) * t->maxnodes);
	t->partial = partial ? pstrdup(partial) : NULL;
	t->indentlen = indentlen;

	memset(&p, 0, sizeof(p));
	p.t = t;
	p.src = t->source;
	p.len = len;
	p.otag = "{{";
	p.olen = 2;
	p.ctag = "}}";
	p.clen = 2;
	p.triple_close = "}}}";
	p.env = env;
	p.err = err;
	p.errcxt = errcxt;

	ok = parse(&p);
	MemoryContextSwitchTo(oldcxt);
	if (!ok)
	{
		MemoryContextDelete(cxt);
		return NULL;
	}
	return t;
}

MustacheTemplate *
mustache_compile(const char *source, size_t len, const MustacheEnv *env,
				 MustacheError *err)
{
	memset(err, 0, sizeof(MustacheError));
	return compile_internal(source, len, env, err, NULL, 0);
}

void
mustache_free(MustacheTemplate *tpl)
{
	if (tpl)
		MemoryContextDelete(tpl->cxt);
}


/* ----------------------------------------------------------------
 *		Escaping
 * ----------------------------------------------------------------
 */

void
mustache_append_html(StringInfo out, const char *s, size_t len)
{
	size_t		run = 0;

	for (size_t i = 0; i < len; i++)
	{
		const char *entity;

		switch (s[i])
		{
			case '&':
				entity = "&amp;";
				break;
			case '<':
				entity = "&lt;";
				break;
			case '>':
				entity = "&gt;";
				break;
			case '"':
				entity = "&quot;";
				break;
			case '\'':
				entity = "&#39;";
				break;
			default:
				continue;
		}
		appendBinaryStringInfo(out, s + run, i - run);
		appendStringInfoString(out, entity);
		run = i + 1;
	}
	appendBinaryStringInfo(out, s + run, len - run);
}

void
mustache_append_json_string(StringInfo out, const char *s, size_t len,
							bool quotes)
{
	static const char hex[] = "0123456789abcdef";
	size_t		run = 0;

	if (quotes)
		appendStringInfoChar(out, '"');
	for (size_t i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];
		char		esc[7];
		int			esclen = 2;

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		esc[0] = '\\';
		switch (c)
		{
			case '"':
				esc[1] = '"';
				break;
			case '\\':
				esc[1] = '\\';
				break;
			case '\b':
				esc[1] = 'b';
				break;
			case '\f':
				esc[1] = 'f';
				break;
			case '\n':
				esc[1] = 'n';
				break;
			case '\r':
				esc[1] = 'r';
				break;
			case '\t':
				esc[1] = 't';
				break;
			default:
				esc[1] = 'u';
				esc[2] = '0';
				esc[3] = '0';
				esc[4] = hex[c >> 4];
				esc[5] = hex[c & 15];
				esclen = 6;
				break;
		}
		appendBinaryStringInfo(out, s + run, i - run);
		appendBinaryStringInfo(out, esc, esclen);
		run = i + 1;
	}
	appendBinaryStringInfo(out, s + run, len - run);
	if (quotes)
		appendStringInfoChar(out, '"');
}


/* ----------------------------------------------------------------
 *		Renderer
 * ----------------------------------------------------------------
 */

static bool
render_error(Renderer *r, MustacheErrorCode code, const char *msg,
			 const char *hint, const MustacheTemplate *t, const MNode *n)
{
	MustacheError *err = r->err;

	err->code = code;
	err->message = MemoryContextStrdup(r->errcxt, msg);
	err->hint = hint ? MemoryContextStrdup(r->errcxt, hint) : NULL;
	err->line = err->column = 0;
	err->partial = NULL;
	if (t && n)
	{
		Position	pos;

		memset(&pos, 0, sizeof(pos));
		template_position(t, &pos, n->offset, &err->line, &err->column);
		if (t->partial)
			err->partial = MemoryContextStrdup(r->errcxt, t->partial);
	}
	return false;
}

static bool
check_output(Renderer *r)
{
	if (r->env->max_output > 0 && (size_t) r->out->len > r->env->max_output)
		return render_error(r, MUSTACHE_ERROR_LIMIT,
							psprintf("output exceeds the limit of %zu bytes",
									 r->env->max_output),
							"Check the template for loops over large arrays, or raise the output limit.",
							NULL, NULL);
	return true;
}

static void
append_escaped(Renderer *r, const char *s, size_t len, MustacheEscape mode)
{
	switch (mode)
	{
		case MUSTACHE_ESCAPE_HTML:
			mustache_append_html(r->out, s, len);
			break;
		case MUSTACHE_ESCAPE_JSON:
			mustache_append_json_string(r->out, s, len, false);
			break;
		case MUSTACHE_ESCAPE_NONE:
			appendBinaryStringInfo(r->out, s, len);
			break;
	}
}

/* the text of a NUMBER, ARRAY or OBJECT, in r->scratch */
static void
value_text(Renderer *r, const MustacheValue *v)
{
	resetStringInfo(&r->scratch);
	r->cb->append_text(r->arg, v, &r->scratch);
}

static void
append_value(Renderer *r, const MustacheValue *v, MustacheEscape mode)
{
	switch (v->kind)
	{
		case MUSTACHE_MISSING:
		case MUSTACHE_NULL:
			break;
		case MUSTACHE_FALSE:
			appendStringInfoString(r->out, "false");
			break;
		case MUSTACHE_TRUE:
			appendStringInfoString(r->out, "true");
			break;
		case MUSTACHE_STRING:
			append_escaped(r, v->ptr, v->len, mode);
			break;
		case MUSTACHE_NUMBER:
		case MUSTACHE_ARRAY:
		case MUSTACHE_OBJECT:
			value_text(r, v);
			append_escaped(r, r->scratch.data, r->scratch.len, mode);
			break;
	}
}

/* falsey: missing, null, false, 0, "", [] */
static bool
truthy(Renderer *r, const MustacheValue *v)
{
	switch (v->kind)
	{
		case MUSTACHE_MISSING:
		case MUSTACHE_NULL:
		case MUSTACHE_FALSE:
			return false;
		case MUSTACHE_TRUE:
		case MUSTACHE_OBJECT:
			return true;
		case MUSTACHE_STRING:
			return v->len > 0;
		case MUSTACHE_NUMBER:
			value_text(r, v);
			return strcmp(r->scratch.data, "0") != 0;
		case MUSTACHE_ARRAY:
			return r->cb->array_length(r->arg, v) > 0;
	}
	return false;
}

/* one step of a dotted name: object member or array index */
static void
step(const MustacheCallbacks *cb, void *arg, MustacheValue *v,
	 const char *key, size_t keylen)
{
	MustacheValue result;

	if (v->kind == MUSTACHE_OBJECT &&
		cb->lookup(arg, v, key, keylen, &result))
	{
		*v = result;
		return;
	}
	if (v->kind == MUSTACHE_ARRAY && keylen > 0 && keylen <= 9)
	{
		size_t		index = 0;
		size_t		i;

		for (i = 0; i < keylen && key[i] >= '0' && key[i] <= '9'; i++)
			index = index * 10 + (key[i] - '0');
		if (i == keylen && index < cb->array_length(arg, v))
		{
			cb->array_element(arg, v, index, &result);
			*v = result;
			return;
		}
	}
	v->kind = MUSTACHE_MISSING;
}

/*
 * Name resolution: the first part is looked up through the context stack
 * from the top, every further part only in the result of the previous.
 */
static void
resolve(Renderer *r, const MNode *n, MustacheValue *v)
{
	int			d;

	if (n->nsegs == 0)
	{
		*v = r->stack[r->depth - 1];
		return;
	}
	v->kind = MUSTACHE_MISSING;
	for (d = r->depth - 1; d >= 0; d--)
	{
		if (r->stack[d].kind == MUSTACHE_OBJECT &&
			r->cb->lookup(r->arg, &r->stack[d], n->segs[0].s, n->segs[0].len, v))
			break;
	}
	if (d < 0)
	{
		v->kind = MUSTACHE_MISSING;
		return;
	}
	for (int i = 1; i < n->nsegs && v->kind != MUSTACHE_MISSING; i++)
		step(r->cb, r->arg, v, n->segs[i].s, n->segs[i].len);
}

/* a dotted name given as text (a filter argument), resolved like a tag's */
static void
resolve_text(Renderer *r, const char *name, size_t len, MustacheValue *v)
{
	size_t		first = 0;
	int			d;

	if (len == 1 && name[0] == '.')
	{
		*v = r->stack[r->depth - 1];
		return;
	}
	while (first < len && name[first] != '.')
		first++;
	v->kind = MUSTACHE_MISSING;
	for (d = r->depth - 1; d >= 0; d--)
	{
		if (r->stack[d].kind == MUSTACHE_OBJECT &&
			r->cb->lookup(r->arg, &r->stack[d], name, first, v))
			break;
	}
	if (d < 0)
	{
		v->kind = MUSTACHE_MISSING;
		return;
	}
	for (size_t i = first + 1, start = first + 1; i <= len && first < len &&
		 v->kind != MUSTACHE_MISSING; i++)
	{
		if (i == len || name[i] == '.')
		{
			step(r->cb, r->arg, v, name + start, i - start);
			start = i + 1;
		}
	}
}

void
mustache_resolve(const MustacheCallbacks *cb, void *arg,
				 const MustacheValue *data, const char *name, size_t len,
				 MustacheValue *result)
{
	size_t		start = 0;

	*result = *data;
	if (len == 1 && name[0] == '.')
		return;
	for (size_t i = 0; i <= len && result->kind != MUSTACHE_MISSING; i++)
	{
		if (i == len || name[i] == '.')
		{
			step(cb, arg, result, name + start, i - start);
			start = i + 1;
		}
	}
}

static void
push(Renderer *r, const MustacheValue *v)
{
	if (r->depth == r->maxdepth)
	{
		r->maxdepth *= 2;
		r->stack = repalloc(r->stack, sizeof(MustacheValue) * r->maxdepth);
	}
	r->stack[r->depth++] = *v;
}

static void
apply_filters(Renderer *r, const MustacheTemplate *t, const MNode *n,
			  MustacheValue *v, bool *raw)
{
	for (int i = 0; i < n->nfilters; i++)
	{
		const MustacheFilter *f = &t->filters[n->first_filter + i];
		MustacheValue result;

		*raw = false;
		switch (f->kind)
		{
			case MUSTACHE_FILTER_JSON:
				{
					StringInfoData buf;

					initStringInfo(&buf);
					switch (v->kind)
					{
						case MUSTACHE_MISSING:
						case MUSTACHE_NULL:
							appendStringInfoString(&buf, "null");
							break;
						case MUSTACHE_FALSE:
							appendStringInfoString(&buf, "false");
							break;
						case MUSTACHE_TRUE:
							appendStringInfoString(&buf, "true");
							break;
						case MUSTACHE_STRING:
							mustache_append_json_string(&buf, v->ptr, v->len, true);
							break;
						case MUSTACHE_NUMBER:
						case MUSTACHE_ARRAY:
						case MUSTACHE_OBJECT:
							r->cb->append_text(r->arg, v, &buf);
							break;
					}
					v->kind = MUSTACHE_STRING;
					v->ptr = buf.data;
					v->len = buf.len;
					/* JSON text is final: no escaping, whatever the mode */
					*raw = true;
				}
				break;

			case MUSTACHE_FILTER_DEFAULT:
				if (v->kind == MUSTACHE_MISSING || v->kind == MUSTACHE_NULL ||
					(v->kind == MUSTACHE_STRING && v->len == 0))
				{
					v->kind = MUSTACHE_STRING;
					v->ptr = f->args[0].value;
					v->len = strlen(f->args[0].value);
				}
				break;

			case MUSTACHE_FILTER_EXTERNAL:
				if (r->cb->apply_filter == NULL)
				{
					v->kind = MUSTACHE_MISSING;
					break;
				}
				{
					MustacheValue *argv = NULL;

					for (int k = 0; k < f->nargs; k++)
					{
						if (!f->args[k].is_name)
							continue;
						if (argv == NULL)
							argv = palloc0(sizeof(MustacheValue) * f->nargs);
						resolve_text(r, f->args[k].value,
									 strlen(f->args[k].value), &argv[k]);
					}
					r->cb->apply_filter(r->arg, f, v, argv, &result);
				}
				*v = result;
				break;
		}
	}
}

static bool
render_partial(Renderer *r, const MustacheTemplate *t, const MNode *n)
{
	PartialEntry *e;
	bool		ok;

	if (r->partial_depth >= r->max_partial_depth)
		return render_error(r, MUSTACHE_ERROR_DEPTH,
							psprintf("partials nested more than %d levels deep",
									 r->max_partial_depth),
							psprintf("Check partial \"%.*s\" for recursion that never ends.",
									 (int) n->len, n->text),
							t, n);

	for (e = r->partials; e != NULL; e = e->next)
	{
		if (e->namelen == n->len && e->indentlen == n->indentlen &&
			memcmp(e->name, n->text, n->len) == 0 &&
			(n->indentlen == 0 ||
			 memcmp(e->indent, n->indent, n->indentlen) == 0))
			break;
	}

	if (e == NULL)
	{
		const char *src;
		size_t		srclen;

		e = palloc0(sizeof(PartialEntry));
		e->name = n->text;
		e->namelen = n->len;
		e->indent = n->indent;
		e->indentlen = n->indentlen;
		if (r->cb->partial &&
			r->cb->partial(r->arg, n->text, n->len, &src, &srclen))
		{
			char	   *name = pnstrdup(n->text, n->len);
			StringInfoData indented;

			/* standalone partial: indent every line of it, as the spec says */
			if (n->indentlen > 0 && srclen > 0)
			{
				initStringInfo(&indented);
				appendBinaryStringInfo(&indented, n->indent, n->indentlen);
				for (size_t i = 0; i < srclen; i++)
				{
					appendStringInfoChar(&indented, src[i]);
					if (src[i] == '\n' && i + 1 < srclen)
						appendBinaryStringInfo(&indented, n->indent, n->indentlen);
				}
				src = indented.data;
				srclen = indented.len;
			}
			e->tpl = compile_internal(src, srclen, r->env, r->err, name,
									  n->indentlen);
			if (e->tpl == NULL)
				return false;
		}
		e->next = r->partials;
		r->partials = e;
	}

	if (e->tpl == NULL)
		return true;
	r->partial_depth++;
	ok = render_nodes(r, e->tpl, 0, e->tpl->nnodes);
	r->partial_depth--;
	return ok;
}

static bool
steps_exceeded(Renderer *r, const MustacheTemplate *t, const MNode *n)
{
	return render_error(r, MUSTACHE_ERROR_LIMIT,
						psprintf("rendering exceeds the limit of " UINT64_FORMAT " steps",
								 r->env->max_steps),
						"Check the template for nested loops over large arrays or recursive partials.",
						t, n);
}

static bool
render_nodes(Renderer *r, const MustacheTemplate *t, int from, int to)
{
	if (r->cb->check)
		r->cb->check(r->arg);

	for (int i = from; i < to;)
	{
		const MNode *n = &t->nodes[i];
		MustacheValue v;

		if (r->env->max_steps > 0 && ++r->steps > r->env->max_steps)
			return steps_exceeded(r, t, n);

		switch (n->type)
		{
			case NODE_TEXT:
				appendBinaryStringInfo(r->out, n->text, n->len);
				i++;
				break;

			case NODE_VAR:
				{
					bool		raw = !n->escape;

					resolve(r, n, &v);
					if (n->nfilters > 0)
					{
						bool		json;

						apply_filters(r, t, n, &v, &json);
						raw = raw || json;
					}
					append_value(r, &v, raw ? MUSTACHE_ESCAPE_NONE : r->env->escape);
					i++;
				}
				break;

			case NODE_SECTION:
				resolve(r, n, &v);
				if (v.kind == MUSTACHE_ARRAY)
				{
					size_t		count = r->cb->array_length(r->arg, &v);

					for (size_t k = 0; k < count; k++)
					{
						MustacheValue elem;

						if (r->env->max_steps > 0 && ++r->steps > r->env->max_steps)
							return steps_exceeded(r, t, n);
						r->cb->array_element(r->arg, &v, k, &elem);
						push(r, &elem);
						if (!render_nodes(r, t, i + 1, n->end))
							return false;
						r->depth--;
					}
				}
				else if (truthy(r, &v))
				{
					push(r, &v);
					if (!render_nodes(r, t, i + 1, n->end))
						return false;
					r->depth--;
				}
				i = n->end;
				break;

			case NODE_INVERTED:
				resolve(r, n, &v);
				if (!truthy(r, &v) && !render_nodes(r, t, i + 1, n->end))
					return false;
				i = n->end;
				break;

			case NODE_PARTIAL:
				if (!render_partial(r, t, n))
					return false;
				i++;
				break;
		}

		if (!check_output(r))
			return false;
	}
	return true;
}

bool
mustache_render(const MustacheTemplate *tpl, const MustacheValue *data,
				const MustacheEnv *env, StringInfo out, MustacheError *err)
{
	Renderer	r;

	memset(err, 0, sizeof(MustacheError));
	memset(&r, 0, sizeof(r));
	r.env = env;
	r.cb = env->cb;
	r.arg = env->arg;
	r.out = out;
	r.err = err;
	r.errcxt = CurrentMemoryContext;
	r.maxdepth = 16;
	r.stack = palloc(sizeof(MustacheValue) * r.maxdepth);
	r.max_partial_depth = env->max_partial_depth > 0 ?
		env->max_partial_depth : MUSTACHE_DEFAULT_PARTIAL_DEPTH;
	initStringInfo(&r.scratch);

	push(&r, data);
	return render_nodes(&r, tpl, 0, tpl->nnodes);
}
