/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Streaming reader of page-touch traces; see trace.h. */
#include "trace.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#define LINE_MAX_LEN 64
#define IN_SIZE (64 * 1024)

struct trace {
	FILE *f;
	bool compressed;
	bool eof;            /* no more input bytes */
	ZSTD_DStream *zs;
	bool frame_done;     /* the last call that made progress ended a frame */
	unsigned char in[IN_SIZE];
	ZSTD_inBuffer zin;
	unsigned char out[IN_SIZE];
	size_t out_pos, out_len;
	char line[LINE_MAX_LEN + 1];
	size_t line_len;
	bool line_too_long;
	uint64_t lineno;
	char err[160];
};

/*
 * Record an error on line @line: t->lineno while a complete line is
 * parsed, t->lineno + 1 while the next one is still being read.
 */
static int fail(struct trace *t, uint64_t line, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(t->err, sizeof(t->err), "line %llu: ",
			 (unsigned long long)line);

	va_start(ap, fmt);
	vsnprintf(t->err + n, sizeof(t->err) - (size_t)n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

int trace_open(const char *path, struct trace **out, char *err, size_t errlen)
{
	static const unsigned char magic[4] = { 0x28, 0xb5, 0x2f, 0xfd };
	struct trace *t = calloc(1, sizeof(*t));
	size_t n;

	if (!t) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -ENOMEM;
	}
	t->f = fopen(path, "rb");
	if (!t->f) {
		int e = errno;

		snprintf(err, errlen, "%s: %s", path, strerror(e));
		free(t);
		return -e;
	}
	n = fread(t->in, 1, sizeof(t->in), t->f);
	t->zin = (ZSTD_inBuffer){ t->in, n, 0 };
	t->eof = n < sizeof(t->in);
	t->compressed = n >= 4 && !memcmp(t->in, magic, 4);
	if (t->compressed) {
		t->zs = ZSTD_createDStream();
		if (!t->zs || ZSTD_isError(ZSTD_initDStream(t->zs))) {
			snprintf(err, errlen, "%s: cannot start zstd", path);
			trace_close(t);
			return -ENOMEM;
		}
	} else {
		memcpy(t->out, t->in, n);
		t->out_len = n;
	}
	*out = t;
	return 0;
}

/* Refill t->out; returns bytes available, 0 at the end, or -EINVAL. */
static int refill(struct trace *t)
{
	if (!t->compressed) {
		if (t->eof)
			return 0;
		t->out_len = fread(t->out, 1, sizeof(t->out), t->f);
		t->out_pos = 0;
		if (ferror(t->f))
			return fail(t, t->lineno + 1, "read error");
		t->eof = t->out_len < sizeof(t->out);
		return (int)(t->out_len > 0);
	}
	for (;;) {
		ZSTD_outBuffer zout = { t->out, sizeof(t->out), 0 };
		size_t ret, in_before;
		bool progress;

		if (t->zin.pos == t->zin.size && !t->eof) {
			t->zin.size = fread(t->in, 1, sizeof(t->in), t->f);
			t->zin.pos = 0;
			if (ferror(t->f))
				return fail(t, t->lineno + 1, "read error");
			t->eof = t->zin.size < sizeof(t->in);
		}
		in_before = t->zin.pos;
		/* With no input left this still flushes buffered output. */
		ret = ZSTD_decompressStream(t->zs, &zout, &t->zin);
		if (ZSTD_isError(ret))
			return fail(t, t->lineno + 1,
				    "corrupt compressed stream: %s",
				    ZSTD_getErrorName(ret));
		progress = zout.pos || t->zin.pos != in_before;
		if (progress)
			t->frame_done = ret == 0;
		if (zout.pos) {
			t->out_pos = 0;
			t->out_len = zout.pos;
			return 1;
		}
		if (!progress && t->zin.pos == t->zin.size && t->eof) {
			/* The input ended inside a frame. */
			if (!t->frame_done)
				return fail(t, t->lineno + 1,
					    "truncated compressed stream");
			return 0;
		}
	}
}

/* Parse the line in t->line: 1 with *addr, 0 to skip it, or an error. */
static int parse_line(struct trace *t, uint64_t *addr)
{
	char *s = t->line, *end;
	unsigned long long v;

	if (t->line_too_long)
		return fail(t, t->lineno, "line longer than %d characters",
			    LINE_MAX_LEN);
	while (*s == ' ' || *s == '\t')
		s++;
	if (*s == '\0' || *s == '#')
		return 0;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		s += 2;
	if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f') ||
	      (*s >= 'A' && *s <= 'F')))
		return fail(t, t->lineno, "not a hexadecimal address: '%s'",
			    t->line);
	errno = 0;
	v = strtoull(s, &end, 16);
	while (*end == ' ' || *end == '\t' || *end == '\r')
		end++;
	if (errno || *end != '\0')
		return fail(t, t->lineno, "not a hexadecimal address: '%s'",
			    t->line);
	*addr = v;
	return 1;
}

int trace_next(struct trace *t, uint64_t *addr)
{
	for (;;) {
		int ret;

		if (t->out_pos == t->out_len) {
			ret = refill(t);
			if (ret < 0)
				return ret;
			if (ret == 0) {
				/* A last line without a newline still counts. */
				if (!t->line_len && !t->line_too_long)
					return 0;
				t->lineno++;
				t->line[t->line_len] = '\0';
				ret = parse_line(t, addr);
				t->line_len = 0;
				t->line_too_long = false;
				if (ret)
					return ret;
				return 0;
			}
		}
		while (t->out_pos < t->out_len) {
			char c = (char)t->out[t->out_pos++];

			if (c == '\n') {
				t->lineno++;
				t->line[t->line_len] = '\0';
				t->line_len = 0;
				ret = parse_line(t, addr);
				t->line_too_long = false;
				if (ret)
					return ret;
				continue;
			}
			if (c == '\0')
				return fail(t, t->lineno + 1,
					    "binary data (NUL byte)");
			if (t->line_len < LINE_MAX_LEN)
				t->line[t->line_len++] = c;
			else
				t->line_too_long = true;
		}
	}
}

const char *trace_error(const struct trace *t)
{
	return t->err;
}

uint64_t trace_line(const struct trace *t)
{
	return t->lineno;
}

void trace_close(struct trace *t)
{
	if (!t)
		return;
	if (t->zs)
		ZSTD_freeDStream(t->zs);
	if (t->f)
		fclose(t->f);
	free(t);
}
