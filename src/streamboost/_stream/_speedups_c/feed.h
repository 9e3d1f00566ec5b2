/* ScanBase.feed_fast: EventScanner.feed for the chunks the kernel is sure of, chiefly a relay's
 * reads cut anywhere (an event's end in one chunk, several events, the next one's start). A
 * part of _speedups.c, included after classify.h, whose classify_bytes it runs on the events
 * a chunk completes.
 */

/* Where the unfinished event's pieces and a chunk's prefix are joined to be classified: a
 * buffer kept for the process (the GIL is held throughout), so a relay's read costs no
 * allocation; `scratch_busy` guards against a re-entry (classify_bytes runs no Python code
 * of ours, but a set lookup may compare objects). */
#define SCRATCH_SIZE 8192
static char scratch[SCRATCH_SIZE];
static int scratch_busy;

/* The bytes of the unfinished event's pieces (a list of bytes) plus d[0, n), joined into
 * `scratch` where they fit and it is free (*owner NULL), else into a new bytes object
 * (*owner, to release after use); NULL with no error set: the pieces are not what
 * EventScanner keeps (the general path decides). */
static const char *
joined(PyObject *pieces, const char *d, Py_ssize_t n, Py_ssize_t *size_out, PyObject **owner)
{
    Py_ssize_t count = PyList_GET_SIZE(pieces), size = n;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *piece = PyList_GET_ITEM(pieces, i);
        if (!PyBytes_CheckExact(piece)) {
            return NULL;
        }
        size += PyBytes_GET_SIZE(piece);
    }
    *owner = NULL;
    char *out = scratch;
    if (size > SCRATCH_SIZE || scratch_busy) {
        *owner = PyBytes_FromStringAndSize(NULL, size);
        if (*owner == NULL) {
            return NULL;
        }
        out = PyBytes_AS_STRING(*owner);
    }
    char *p = out;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *piece = PyList_GET_ITEM(pieces, i);
        memcpy(p, PyBytes_AS_STRING(piece), (size_t)PyBytes_GET_SIZE(piece));
        p += PyBytes_GET_SIZE(piece);
    }
    memcpy(p, d, (size_t)n);
    *size_out = size;
    return out;
}

/* Where EventScanner.feed(data) would end data's prefix at an event boundary (*end; 0: data
 * completes no event) and, packed as classify packs them, the events that prefix completes;
 * -2 when not sure (mixed line endings, a critical event, token usage, a scanner not fast);
 * -1 on an error. Changes nothing: scan_commit does, so a caller may still hand the chunk on whole.
 * `data` is non-empty bytes. */
static long
scan_peek(ScanBase *scan, PyObject *data, Py_ssize_t *end)
{
    const char *d = PyBytes_AS_STRING(data);
    Py_ssize_t n = PyBytes_GET_SIZE(data);
    PyObject *partial = scan->partial;
    if (partial != NULL && is_none(partial)) {
        partial = NULL;
    }
    int sse = scan->fmt == FORMAT_SSE;
    if (!scan->fast || (!sse && scan->fmt != FORMAT_LINES) ||
        (partial != NULL && (!PyList_CheckExact(partial) || PyList_GET_SIZE(partial) == 0))) {
        return -2;
    }
    char last = 0; /* the unfinished event's last byte: a boundary can straddle chunks */
    Py_ssize_t first = 0; /* where the unfinished event ends (CRLF: crlf_bounds says) */
    if (partial != NULL) {
        PyObject *piece = PyList_GET_ITEM(partial, PyList_GET_SIZE(partial) - 1);
        if (!PyBytes_CheckExact(piece) || PyBytes_GET_SIZE(piece) == 0) {
            return -2;
        }
        last = PyBytes_AS_STRING(piece)[PyBytes_GET_SIZE(piece) - 1];
    }
    *end = 0;
    if (sse) {
        const char *below = d + n; /* the last blank line: rfind("\n\n") */
        while (below > d + 1) {
            const char *lf = last_lf(d + 1, below - d - 1);
            if (lf == NULL) {
                break;
            }
            if (lf[-1] == '\n') {
                *end = lf - d + 1;
                break;
            }
            if (lf[-1] == '\r') {
                break; /* CRLF lines (or mixed): crlf_bounds' below, with the CR found */
            }
            below = lf - 1; /* lf[-1] is no LF either */
        }
        if (*end == 0 && d[0] == '\n' && last == '\n') {
            *end = 1;
        }
        /* With a CR the line endings are CRLF (crlf_bounds finds the boundaries) or mixed
         * (CR CR, LF CR...: the general path finds them). Only the bytes past the boundary
         * above are searched here: an event before it with a CR is GENERAL to classify (the
         * memo's events have none, classify_event takes one only where every line of the
         * chunk ends CRLF, which the LF pair above rules out), and the unfinished event's
         * earlier pieces were searched as they came. */
        if ((last == '\r' || memchr(d + *end, '\r', (size_t)(n - *end)) != NULL) &&
            crlf_bounds(partial, d, n, end, &first) < 0) {
            return -2;
        }
    }
    else {
        const char *lf = last_lf(d, n);
        *end = lf == NULL ? 0 : lf - d + 1;
    }
    if (*end == 0) {
        return 0;
    }
    long kind;
    if (partial == NULL) {
        kind = classify_bytes(scan, d, *end); /* the events lie in data: no copy */
    }
    else {
        /* The unfinished event's pieces and its end, joined to be classified; the events
         * after it are classified where they lie (no copy). */
        if (first == 0 && !sse) { /* (first > 0: crlf_bounds found it) */
            first = (const char *)memchr(d, '\n', (size_t)*end) - d + 1;
        }
        else if (first == 0) {
            first = last == '\n' && d[0] == '\n'
                        ? 1 /* the blank line straddles the chunks */
                        : find(d, *end, "\n\n", 2) - d + 2; /* *end > 0: there is one */
        }
        PyObject *owner;
        Py_ssize_t size;
        const char *segment = joined(partial, d, first, &size, &owner);
        if (segment == NULL) {
            return PyErr_Occurred() ? -1 : -2;
        }
        if (owner == NULL) {
            scratch_busy = 1;
        }
        kind = classify_bytes(scan, segment, size);
        if (owner == NULL) {
            scratch_busy = 0;
        }
        Py_XDECREF(owner);
        if (kind > 0 && first < *end) {
            long rest = classify_bytes(scan, d + first, *end - first);
            long events = (kind >> EVENTS_SHIFT) + (rest >> EVENTS_SHIFT);
            kind = rest <= 0                          ? rest
                   : events >= 1L << EVENTS_SHIFT ? GENERAL /* more than the packing holds */
                                                  : kind + rest;
        }
    }
    return kind > 0 ? kind : kind < 0 ? -1 : -2;
}

/* A list holding data[at:] alone: `pieces` itself when nothing else holds it (a relay's
 * every read would otherwise make one list and free another), else a new one; NULL with an
 * error set. Takes the reference to `pieces` (NULL: none). */
static PyObject *
rest_of(PyObject *data, Py_ssize_t at, PyObject *pieces)
{
    PyObject *tail = PyBytes_FromStringAndSize(PyBytes_AS_STRING(data) + at,
                                               PyBytes_GET_SIZE(data) - at);
    if (tail == NULL) {
        Py_XDECREF(pieces);
        return NULL;
    }
    if (pieces != NULL && PyList_CheckExact(pieces) && Py_REFCNT(pieces) == 1 &&
        PyList_GET_SIZE(pieces) >= 1) {
        if (PyList_GET_SIZE(pieces) == 1 ||
            PyList_SetSlice(pieces, 1, PyList_GET_SIZE(pieces), NULL) == 0) {
            PyObject *old = PyList_GET_ITEM(pieces, 0);
            PyList_SET_ITEM(pieces, 0, tail);
            Py_DECREF(old);
            return pieces;
        }
        PyErr_Clear(); /* a failed deletion (no memory): a new list serves as well */
    }
    Py_XDECREF(pieces);
    PyObject *rest = PyList_New(1);
    if (rest == NULL) {
        Py_DECREF(tail);
        return NULL;
    }
    PyList_SET_ITEM(rest, 0, tail);
    return rest;
}

/* The rest of feed(data) after scan_peek said (end, kind): the fields set as feed sets them.
 * 0, or -1 on an error. */
static int
scan_commit(ScanBase *scan, PyObject *data, Py_ssize_t end, long kind)
{
    Py_ssize_t n = PyBytes_GET_SIZE(data);
    if (end == 0) { /* no boundary: the chunk joins the unfinished event */
        if (scan->partial == NULL || is_none(scan->partial)) {
            PyObject *pieces = PyList_New(1);
            if (pieces == NULL) {
                return -1;
            }
            PyList_SET_ITEM(pieces, 0, Py_NewRef(data));
            Py_XSETREF(scan->partial, pieces);
        }
        else if (PyList_Append(scan->partial, data) < 0) {
            return -1;
        }
        scan->pending += n;
        scan->events = scan->content = 0;
    }
    else {
        PyObject *pieces = scan->partial;
        scan->partial = NULL;
        if (end == n) {
            Py_XDECREF(pieces);
        }
        else if ((scan->partial = rest_of(data, end, pieces)) == NULL) {
            scan->pending = 0; /* out of memory: the unfinished event is lost, consistently */
            return -1;
        }
        scan->pending = n - end;
        scan->events = kind >> EVENTS_SHIFT;
        scan->content = kind & ((1L << EVENTS_SHIFT) - 1);
    }
    scan->critical = 0;
    return 0;
}

/* EventScanner.feed(data) where the kernel is sure: the boundary (as feed returns it), -2 when
 * not sure (nothing changed), -1 on an error. */
static Py_ssize_t
scan_feed(ScanBase *scan, PyObject *data)
{
    Py_ssize_t end;
    long kind = scan_peek(scan, data, &end);
    if (kind < 0) {
        return kind;
    }
    return scan_commit(scan, data, end, kind) < 0 ? -1 : end;
}

static PyObject *
ScanBase_feed_fast(ScanBase *self, PyObject *data)
{
    if (!PyBytes_CheckExact(data) || PyBytes_GET_SIZE(data) == 0) {
        PyErr_SetString(PyExc_TypeError, "feed_fast() takes non-empty bytes");
        return NULL;
    }
    Py_ssize_t end = scan_feed(self, data);
    return end == -1 ? NULL : PyLong_FromSsize_t(end < 0 ? -1 : end);
}
