/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Page-touch traces: one hexadecimal address per line (an optional 0x
 * prefix; blank lines and lines starting with '#' are skipped), plain text
 * or zstd-compressed (detected by the frame magic).  Read as a stream in
 * constant memory, so traces of any length work.
 */
#ifndef TDPSIM_TRACE_H
#define TDPSIM_TRACE_H

#include <stdint.h>
#include <stdio.h>

struct trace;

/*
 * trace_open() - open @path for reading.  Returns 0, or a negative errno
 * with a message in @err (-ENOENT and friends from fopen, -ENOMEM).
 */
int trace_open(const char *path, struct trace **out, char *err, size_t errlen);

/*
 * trace_next() - the next address.  Returns 1 and stores it, 0 at the end
 * of the trace, or -EINVAL for malformed input (a line that is not one
 * hexadecimal number, a line too long, a truncated or corrupt compressed
 * stream, a read error) with the message and line number in trace_error().
 */
int trace_next(struct trace *t, uint64_t *addr);

/* The message of the last error ("line N: ..."), or "" if none. */
const char *trace_error(const struct trace *t);

/* Lines read so far (the number of the line last returned). */
uint64_t trace_line(const struct trace *t);

void trace_close(struct trace *t);

#endif /* TDPSIM_TRACE_H */
