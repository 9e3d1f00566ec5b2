/* ScanBase.classify (GENERAL, or the whole events of one chunk), the memo's fields as attributes,
 * and ScanBase's type object. A part of _speedups.c, included in order: one translation unit,
 * so the walk, the classifiers and the memo inline here.
 */


static long classify_crlf(ScanBase *scan, const char *d, Py_ssize_t n);

/* One whole event d[0, n) (SSE or NDJSON): GENERAL, CONTENT or OTHER, -1 on an error; *next:
 * where a chunk of several events has its first one end (classify_many starts there), NULL
 * otherwise. With critical events asked (coalescing), most keys are asked of every chunk: one
 * walk finds them all (scan_keys); without, an SSE chunk needs two or three, looked for one at
 * a time. */
static long
classify_event(ScanBase *scan, const char *d, Py_ssize_t n, int sse, const char **next)
{
    int critical_asked = !is_none(scan->critical_names);
    PyObject *content = is_none(scan->content_names) ? NULL : scan->content_names;
    Keys keys;
    const char *cr, *lf = memchr(d, '\n', (size_t)n);
    *next = NULL;
    if (sse && lf != NULL && lf > d && lf[-1] == '\r') {
        return classify_crlf(scan, d, n); /* sse-starlette's and Gemini's line endings */
    }
    /* A blank line (SSE) or a line end (NDJSON) before the end, or none: not one event, and
     * none of the chunk-wide reads below (the CR search, the walk) is spent on it. */
    if (sse && lf != NULL && lf < d + n - 2) {
        const char *pair = lf[1] == '\n' ? lf : find(lf + 1, d + n - lf - 1, "\n\n", 2);
        if (pair != d + n - 2) {
            *next = pair == NULL ? NULL : pair + 2;
            return GENERAL;
        }
    }
    if (!sse && lf != NULL && lf < d + n - 1) {
        *next = lf + 1;
        return GENERAL;
    }
    if (critical_asked) {
        if (scan_keys(d, n, scan->critical_names, content != NULL && sse, &keys) < 0) {
            return -1;
        }
        cr = keys.any_cr ? d : NULL; /* only whether there is one is asked */
    }
    else {
        cr = sse ? memchr(d, '\r', (size_t)n) : NULL; /* NDJSON: asked below when needed */
    }
    if (sse) {
        /* One event: its only blank line ends the chunk (the search above: no pair before
         * it); a CR may end lines early. */
        if (n < 3 || lf == NULL || d[n - 1] != '\n' || d[n - 2] != '\n' || cr != NULL) {
            return GENERAL;
        }
        if (is_space(d[0])) {
            Py_ssize_t i = 1;
            while (i < n && is_space(d[i])) {
                i++;
            }
            if (i == n) {
                return GENERAL; /* blank: no event for the general path */
            }
        }
    }
    else {
        Py_ssize_t i = 0;
        while (i < n && is_space(d[i])) {
            i++;
        }
        if (lf != d + n - 1 || i == n) {
            return GENERAL; /* an NDJSON chunk of one non-blank line */
        }
    }
    FirstName first = {NULL, NULL, 0};
    if (critical_asked || sse) {
        first.any_cr = sse ? 0 : critical_asked ? keys.any_cr : memchr(d, '\r', (size_t)n) != NULL;
        if (lf >= d + n - 2 && !first.any_cr) { /* one line: only it can name an event */
            if (n >= 6 && memcmp(d, "event:", 6) == 0) {
                next_event_name(d, d, d + n, 0, &first.name, &first.stop);
            }
        }
        else if (!next_event_name(d, d, d + n, first.any_cr, &first.name, &first.stop)) {
            first.name = NULL;
        }
    }
    if (critical_asked) {
        int critical =
            is_critical(d, n, scan->critical_names, scan->openai_chat, &keys, &first);
        if (critical != 0) {
            return critical < 0 ? -1 : GENERAL;
        }
    }
    /* Token usage, coalesced or not (a format whose usage is not critical, Anthropic's, too):
     * the scanner's general path reads it. */
    if (critical_asked ? keys.found[K_USAGE] : sse ? has_value(d, n, K_USAGE) : has_usage(d, n)) {
        return GENERAL;
    }
    int tokens = sse ? is_sse_content(d, n, scan->metadata, content, scan->openai_chat,
                                      critical_asked ? &keys : NULL, &first)
                     : 1;
    if (tokens < 0) {
        return -1;
    }
#ifdef MEMO
    if (tokens && !crlf_busy) { /* (a CRLF chunk's LF version: the chunk itself is learned) */
        memo_learn(scan, d, n, sse);
    }
#endif
    return tokens ? CONTENT : OTHER;
}

/* A chunk of several whole events and nothing more (a relay's read, an app's own batch):
 * each event classified as if it were a chunk of its own, the answer packed as
 * events << EVENTS_SHIFT | content events; GENERAL when one of them is not sure (critical,
 * usage, a blank line between events, a CR) or when the chunk ends inside an event. `first`:
 * where the first event ends, as classify_event found it. */
static long
classify_many(ScanBase *scan, const char *d, Py_ssize_t n, int sse, const char *first)
{
    /* No chunk-wide CR search: each event is either the memo's (no CR in its digested bytes
     * nor, by MEMO_STOP, in its string) or classify_event's (GENERAL on any CR), so a CR
     * anywhere, a CR CR or CR LF boundary too, makes the answer GENERAL. */
    if (sse ? n < 6 || d[n - 1] != '\n' || d[n - 2] != '\n' : n < 2 || d[n - 1] != '\n') {
        return GENERAL;
    }
    const char *p = d, *end = d + n;
    long events = 0, content = 0, most = (1L << EVENTS_SHIFT) - 1;
    const char *stop = first, *unused; /* the first event's end: classify_event found it */
    while (p < end) {
        if (p != d) {
            stop = sse ? find(p, end - p, "\n\n", 2)
                       : (const char *)memchr(p, '\n', (size_t)(end - p));
            if (stop == NULL) {
                return GENERAL; /* an odd LF after the last blank line: the general path's */
            }
            stop += sse ? 2 : 1;
        }
        long kind =
#ifdef MEMO
            scan->memo_tail != 0 && !crlf_busy && memo_probe(scan, p, stop - p) ? CONTENT :
#endif
            classify_event(scan, p, stop - p, sse, &unused);
        if (kind <= 0 || ++events > most) {
            return kind < 0 ? -1 : GENERAL;
        }
        content += kind == CONTENT;
        p = stop;
    }
    return events < 2 ? GENERAL : events << EVENTS_SHIFT | content;
}

/* Whole events d[0, n): as one (classify_event), else as several where it found the first
 * one's end (classify_many). */
static inline long
classify_events(ScanBase *scan, const char *d, Py_ssize_t n, int sse)
{
    const char *next;
    long kind = classify_event(scan, d, n, sse, &next);
    return kind == GENERAL && next != NULL ? classify_many(scan, d, n, sse, next) : kind;
}

/* An SSE chunk whose lines end CRLF (sse-starlette's EventSourceResponse writes them so, and
 * Gemini's API): classified as its LF version, the same lines by the SSE spec and to the
 * general path (its patterns take either ending: docs/architecture.md, "CRLF events"), then
 * learned by the memo as it is. GENERAL when the endings are mixed (a CR alone, an LF
 * alone) or the chunk is over the buffer. */
static long
classify_crlf(ScanBase *scan, const char *d, Py_ssize_t n)
{
    if (crlf_busy || n > CRLF_SIZE) {
        return GENERAL;
    }
    char *out = crlf_buffer;
    const char *p = d, *end = d + n;
    while (p < end) {
        const char *cr = memchr(p, '\r', (size_t)(end - p)), *stop = cr == NULL ? end : cr;
        if (memchr(p, '\n', (size_t)(stop - p)) != NULL) {
            return GENERAL; /* an LF without its CR */
        }
        memcpy(out, p, (size_t)(stop - p));
        out += stop - p;
        if (cr == NULL) {
            break;
        }
        if (cr + 1 == end || cr[1] != '\n') {
            return GENERAL; /* a CR alone */
        }
        *out++ = '\n';
        p = cr + 2;
    }
    crlf_busy = 1; /* no memo on the LF version, and no second buffer */
    long kind = classify_events(scan, crlf_buffer, out - crlf_buffer, 1);
    crlf_busy = 0;
#ifdef MEMO
    if (kind == CONTENT) {
        memo_learn(scan, d, n, 1);
    }
#endif
    return kind;
}

/* classify() of d[0, n) (non-empty) whatever the scanner's pending bytes. */
static long
classify_bytes(ScanBase *scan, const char *d, Py_ssize_t n)
{
    if (scan->metadata == NULL || !PyAnySet_Check(scan->metadata) ||
        (!is_none(scan->critical_names) && !PyAnySet_Check(scan->critical_names)) ||
        (!is_none(scan->content_names) && !PyAnySet_Check(scan->content_names))) {
        return GENERAL; /* not what EventScanner sets: the Python path decides */
    }
    if (scan->fmt == FORMAT_CHUNKS) {
        return CONTENT;
    }
    int sse = scan->fmt == FORMAT_SSE;
#ifdef MEMO
    if (scan->memo_tail != 0 && memo_probe(scan, d, n)) {
        return CONTENT;
    }
#endif
    return classify_events(scan, d, n, sse);
}

/* ScanBase.classify: GENERAL, or the whole events `body` holds and how many carry output
 * tokens (CONTENT, OTHER: one event), -1 on an error. `body` is non-empty bytes. */
static long
classify(ScanBase *scan, PyObject *body)
{
    if (!scan->fast || scan->pending) {
        return GENERAL; /* an unfinished event first: the scanner's feed decides */
    }
    return classify_bytes(scan, PyBytes_AS_STRING(body), PyBytes_GET_SIZE(body));
}

static PyObject *
ScanBase_classify(ScanBase *self, PyObject *body)
{
    if (!PyBytes_CheckExact(body) || PyBytes_GET_SIZE(body) == 0) {
        PyErr_SetString(PyExc_TypeError, "classify() takes non-empty bytes");
        return NULL;
    }
    long kind = classify(self, body);
    return kind < 0 ? NULL : PyLong_FromLong(kind);
}
