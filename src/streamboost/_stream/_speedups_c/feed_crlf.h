/* feed_fast's boundaries for SSE streams whose lines all end CRLF (sse-starlette's, Gemini's)
 * cut anywhere: a relay of such an upstream. A part of _speedups.c, included right before
 * feed.h, whose scan_peek asks it when a chunk holds a CR.
 */

/* The unfinished event's k-th byte from its end (k >= 1), 0 where it has fewer bytes; the
 * pieces are bytes (scan_peek checked the last one; others are checked here). */
static char
partial_byte(PyObject *pieces, Py_ssize_t k)
{
    if (pieces == NULL) {
        return 0;
    }
    for (Py_ssize_t i = PyList_GET_SIZE(pieces) - 1; i >= 0; i--) {
        PyObject *piece = PyList_GET_ITEM(pieces, i);
        if (!PyBytes_CheckExact(piece)) {
            return 0;
        }
        if (PyBytes_GET_SIZE(piece) >= k) {
            return PyBytes_AS_STRING(piece)[PyBytes_GET_SIZE(piece) - k];
        }
        k -= PyBytes_GET_SIZE(piece);
    }
    return 0;
}

/* With every line ending CRLF, a blank line is an LF two bytes after an LF: the byte two
 * before d[i], reaching back into the unfinished event for i < 2. */
static inline int
crlf_ends_event(const char *d, Py_ssize_t i, char b1, char b2)
{
    return (i >= 2 ? d[i - 2] : i == 1 ? b1 : b2) == '\n';
}

/* Where a chunk of such a stream ends its last event (*end, 0: none) and its first one
 * (*first), as EventScanner.feed finds them; -1 when its line endings, or the unfinished
 * event's last ones, are not all CRLF (a CR alone, an LF alone: the general path's). */
static int
crlf_bounds(PyObject *pieces, const char *d, Py_ssize_t n, Py_ssize_t *end, Py_ssize_t *first)
{
    char b1 = partial_byte(pieces, 1), b2 = partial_byte(pieces, 2);
    if (b1 == '\r' ? d[0] != '\n' : b1 == '\n' && b2 != '\r') {
        return -1;
    }
    /* A CR last after a line end (LF CR) may end a blank line: the general path ends the
     * event there, and takes the LF that may follow as the rest of a CRLF; it decides such
     * chunks (and the next). A CR last after other bytes waits for its LF. */
    if ((d[0] == '\n' && b1 != '\r') ||
        (d[n - 1] == '\r' && (n >= 2 ? d[n - 2] : b1) == '\n')) {
        return -1;
    }
    const char *p = d[0] == '\n' ? d + 1 : d, *e = d + n; /* d[0]: the LF after b1's CR */
    while (p < e) {
        const char *cr = memchr(p, '\r', (size_t)(e - p)), *stop = cr == NULL ? e : cr;
        if (memchr(p, '\n', (size_t)(stop - p)) != NULL) {
            return -1; /* an LF without its CR */
        }
        if (cr == NULL || cr + 1 == e) {
            break; /* (a CR last: its LF starts the next chunk) */
        }
        if (cr[1] != '\n') {
            return -1; /* a CR alone */
        }
        p = cr + 2;
    }
    *end = *first = 0;
    for (const char *below = e; below > d;) {
        const char *lf = last_lf(d, below - d);
        if (lf == NULL) {
            break;
        }
        if (crlf_ends_event(d, lf - d, b1, b2)) {
            *end = lf - d + 1;
            break;
        }
        below = lf;
    }
    for (const char *p = d; pieces != NULL && *end > 0 && p < d + *end;) {
        const char *lf = memchr(p, '\n', (size_t)(d + *end - p));
        if (crlf_ends_event(d, lf - d, b1, b2)) {
            *first = lf - d + 1; /* there is one: the last */
            break;
        }
        p = lf + 1;
    }
    return 0;
}
