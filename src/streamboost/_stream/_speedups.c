/* streamboost._stream._speedups: the C twin of the fast-path kernel (_kernel.py).
 *
 * Four base types with the fields listed in _table.py and the functions on them that a body
 * chunk runs, each the same rule as its Python twin in _kernel.py (tests/test_kernel.py runs
 * both on the same inputs):
 *
 * - ScanBase.classify(body): is the chunk one whole, non-critical event, with or without
 *   output tokens (CONTENT / OTHER), or GENERAL (not sure: the scanner's general path decides);
 * - BatchBase.add(body, size, events, content, critical): join whole events to a batch, and
 *   say whether a flush is due (WAKE) or the app must wait (FULL);
 * - RecordBase.took / produced / wrote / sent: the per-chunk changes to a stream's record
 *   (produced: when the app sent a body message, the gaps between its content events);
 * - Sender.send(message): after use(mode), takes a chunk it is sure of and hands every other
 *   message to its ``general`` callable (set by the Python sender, not looked up by name);
 *   in batch mode a due flush or a full buffer calls the batch's own ``wake()`` / ``room()``
 *   methods (looked up then, not stored: no bound method objects per stream).
 *
 * The numbers (kinds, codes, formats, modes) are read from _table.py when this module is
 * imported; nothing here spells one.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <string.h>

static PyObject *s_type, *s_body_type, *s_more_body, *s_body, *s_wake, *s_room, *s_general, *s_time;
static long GENERAL, CONTENT, OTHER, FORMAT_SSE, FORMAT_LINES, FORMAT_CHUNKS;
static long WAKE, FULL, MODE_GENERAL, MODE_DIRECT, MODE_BATCH;

/* The gap buckets' upper bounds (_table.GAP_BOUNDS), read at import; GAP_N of them. */
#define GAP_SLOTS 16
static double GAP_BOUNDS[GAP_SLOTS];
static Py_ssize_t GAP_N;

#define GC_TYPE(NAME, STRUCT, DOC)                                                              \
    static PyTypeObject NAME = {                                                                \
        PyVarObject_HEAD_INIT(NULL, 0).tp_name = "streamboost._stream._speedups." #STRUCT,      \
        .tp_basicsize = sizeof(STRUCT),                                                         \
        .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,              \
        .tp_doc = DOC,                                                                          \
        .tp_traverse = (traverseproc)STRUCT##_traverse,                                         \
        .tp_clear = (inquiry)STRUCT##_clear,                                                    \
        .tp_dealloc = (destructor)STRUCT##_dealloc,                                             \
        .tp_members = STRUCT##_members,                                                         \
        .tp_methods = STRUCT##_methods,                                                         \
        .tp_new = PyType_GenericNew,                                                            \
    }

#define DEALLOC(STRUCT)                                                                         \
    static void STRUCT##_dealloc(STRUCT *self)                                                  \
    {                                                                                           \
        PyObject_GC_UnTrack(self);                                                              \
        STRUCT##_clear(self);                                                                   \
        Py_TYPE(self)->tp_free((PyObject *)self);                                               \
    }

/* -- RecordBase ------------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    Py_ssize_t bytes_out, chunks_in, content_events, events, writes;
    PyObject *first_byte_at, *first_token_at, *last_body_at, *last_token_at; /* float or None */
    double app_at, gap_at, gap_max, gap_sum;
    Py_ssize_t gap_counts[GAP_SLOTS]; /* GAP_N + 1 used: per bucket, the last is +Inf */
} RecordBase;

static int
RecordBase_traverse(RecordBase *self, visitproc visit, void *arg)
{
    Py_VISIT(self->first_byte_at);
    Py_VISIT(self->first_token_at);
    Py_VISIT(self->last_body_at);
    Py_VISIT(self->last_token_at);
    return 0;
}

static int
RecordBase_clear(RecordBase *self)
{
    Py_CLEAR(self->first_byte_at);
    Py_CLEAR(self->first_token_at);
    Py_CLEAR(self->last_body_at);
    Py_CLEAR(self->last_token_at);
    return 0;
}

DEALLOC(RecordBase)

static inline int
is_none(PyObject *value)
{
    return value == NULL || value == Py_None;
}

static void
record_wrote(RecordBase *rec, Py_ssize_t size, Py_ssize_t content, PyObject *now)
{
    if (size) {
        rec->bytes_out += size;
        if (is_none(rec->first_byte_at)) {
            Py_XSETREF(rec->first_byte_at, Py_NewRef(now));
        }
    }
    if (content) {
        rec->content_events += content;
        if (is_none(rec->first_token_at)) {
            Py_XSETREF(rec->first_token_at, Py_NewRef(now));
        }
        Py_XSETREF(rec->last_token_at, Py_NewRef(now));
    }
    rec->writes += 1;
    Py_XSETREF(rec->last_body_at, Py_NewRef(now));
}

/* The app sent a body message at `now` completing `content` content events. */
static inline void
record_produced(RecordBase *rec, Py_ssize_t content, double now)
{
    rec->app_at = now;
    if (content) {
        double last = rec->gap_at;
        rec->gap_at = now;
        if (last != -Py_HUGE_VAL) {
            double gap = now - last;
            Py_ssize_t i = 0;
            while (i < GAP_N && GAP_BOUNDS[i] < gap) {
                i++;
            }
            rec->gap_counts[i] += 1;
            rec->gap_sum += gap;
            if (gap > rec->gap_max) {
                rec->gap_max = gap;
            }
        }
        if (content > 1) {
            rec->gap_counts[0] += content - 1;
        }
    }
}

static int
ssize_args(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t want, Py_ssize_t *out)
{
    if (nargs != want) {
        PyErr_Format(PyExc_TypeError, "expected %zd arguments, got %zd", want, nargs);
        return -1;
    }
    for (Py_ssize_t i = 0; i < want; i++) {
        out[i] = PyNumber_AsSsize_t(args[i], PyExc_OverflowError);
        if (out[i] == -1 && PyErr_Occurred()) {
            return -1;
        }
    }
    return 0;
}

static PyObject *
RecordBase_took(RecordBase *self, PyObject *events)
{
    Py_ssize_t n = PyNumber_AsSsize_t(events, PyExc_OverflowError);
    if (n == -1 && PyErr_Occurred()) {
        return NULL;
    }
    self->chunks_in += 1;
    self->events += n;
    Py_RETURN_NONE;
}

static PyObject *
RecordBase_wrote(RecordBase *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t v[2];
    if (ssize_args(args, nargs - 1, 2, v) < 0) {
        return NULL;
    }
    record_wrote(self, v[0], v[1], args[2]);
    Py_RETURN_NONE;
}

static PyObject *
RecordBase_produced(RecordBase *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t content;
    if (ssize_args(args, nargs - 1, 1, &content) < 0) {
        return NULL;
    }
    double now = PyFloat_AsDouble(args[1]);
    if (now == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    record_produced(self, content, now);
    Py_RETURN_NONE;
}

static PyObject *
RecordBase_sent(RecordBase *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t v[3];
    if (ssize_args(args, nargs - 1, 3, v) < 0) {
        return NULL;
    }
    double now = PyFloat_AsDouble(args[3]);
    if (now == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    self->chunks_in += 1;
    self->events += v[1];
    record_produced(self, v[2], now);
    record_wrote(self, v[0], v[2], args[3]);
    Py_RETURN_NONE;
}

static PyObject *
RecordBase_gap_counts(RecordBase *self, void *closure)
{
    PyObject *counts = PyTuple_New(GAP_N + 1);
    if (counts == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i <= GAP_N; i++) {
        PyObject *n = PyLong_FromSsize_t(self->gap_counts[i]);
        if (n == NULL) {
            Py_DECREF(counts);
            return NULL;
        }
        PyTuple_SET_ITEM(counts, i, n);
    }
    return counts;
}

static PyGetSetDef RecordBase_getset[] = {
    {"gap_counts", (getter)RecordBase_gap_counts, NULL,
     "Gaps per GAP_BOUNDS bucket (not cumulative; the last is +Inf).", NULL},
    {NULL},
};

static PyMemberDef RecordBase_members[] = {
    {"bytes_out", T_PYSSIZET, offsetof(RecordBase, bytes_out), 0, NULL},
    {"chunks_in", T_PYSSIZET, offsetof(RecordBase, chunks_in), 0, NULL},
    {"content_events", T_PYSSIZET, offsetof(RecordBase, content_events), 0, NULL},
    {"events", T_PYSSIZET, offsetof(RecordBase, events), 0, NULL},
    {"writes", T_PYSSIZET, offsetof(RecordBase, writes), 0, NULL},
    {"first_byte_at", T_OBJECT, offsetof(RecordBase, first_byte_at), 0, NULL},
    {"first_token_at", T_OBJECT, offsetof(RecordBase, first_token_at), 0, NULL},
    {"last_body_at", T_OBJECT, offsetof(RecordBase, last_body_at), 0, NULL},
    {"last_token_at", T_OBJECT, offsetof(RecordBase, last_token_at), 0, NULL},
    {"app_at", T_DOUBLE, offsetof(RecordBase, app_at), 0, NULL},
    {"gap_at", T_DOUBLE, offsetof(RecordBase, gap_at), 0, NULL},
    {"gap_max", T_DOUBLE, offsetof(RecordBase, gap_max), 0, NULL},
    {"gap_sum", T_DOUBLE, offsetof(RecordBase, gap_sum), 0, NULL},
    {NULL},
};

static PyMethodDef RecordBase_methods[] = {
    {"took", (PyCFunction)RecordBase_took, METH_O, "A chunk completing `events` was buffered."},
    {"wrote", (PyCFunction)(void (*)(void))RecordBase_wrote, METH_FASTCALL,
     "wrote(size, content, now): one body message went out."},
    {"sent", (PyCFunction)(void (*)(void))RecordBase_sent, METH_FASTCALL,
     "sent(size, events, content, now): a chunk went out as the app sent it."},
    {"produced", (PyCFunction)(void (*)(void))RecordBase_produced, METH_FASTCALL,
     "produced(content, now): the app sent a body message completing `content` content events."},
    {NULL},
};

GC_TYPE(RecordBase_Type, RecordBase, "StreamRecord's per-chunk fields and changes.");

/* -- ScanBase -------------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *critical_names; /* frozenset of bytes, or None */
    PyObject *metadata;       /* frozenset of bytes */
    PyObject *content_names;  /* frozenset of bytes, or None: a protocol's only content events */
    Py_ssize_t fmt, pending;
    char fast, openai_chat;
} ScanBase;

static int
ScanBase_traverse(ScanBase *self, visitproc visit, void *arg)
{
    Py_VISIT(self->critical_names);
    Py_VISIT(self->metadata);
    Py_VISIT(self->content_names);
    return 0;
}

static int
ScanBase_clear(ScanBase *self)
{
    Py_CLEAR(self->critical_names);
    Py_CLEAR(self->metadata);
    Py_CLEAR(self->content_names);
    return 0;
}

DEALLOC(ScanBase)

/* memmem for the short needles here: glibc's memmem is its generic two-way search (~1.3k
 * instructions on a 200-byte OpenAI chunk), where memchr for the first byte is vectorised. */
static const char *
find(const char *d, Py_ssize_t n, const char *needle, Py_ssize_t len)
{
    const char *end = d + n, *p = d;
    while (end - p >= len) {
        p = memchr(p, needle[0], (size_t)(end - p - len + 1));
        if (p == NULL) {
            return NULL;
        }
        if (memcmp(p + 1, needle + 1, (size_t)(len - 1)) == 0) {
            return p;
        }
        p++;
    }
    return NULL;
}

static inline int
is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* 1 when bytes(data[start:end]).strip() is in `names`, 0 when not, -1 on an error. */
static int
stripped_in(const char *start, const char *end, PyObject *names)
{
    while (start < end && is_space(*start)) {
        start++;
    }
    while (end > start && is_space(end[-1])) {
        end--;
    }
    PyObject *value = PyBytes_FromStringAndSize(start, end - start);
    if (value == NULL) {
        return -1;
    }
    int found = PySet_Contains(names, value);
    Py_DECREF(value);
    return found;
}

/* _classify._EVENT_NAME from `p` on: "event:" at the start of `d` or after a CR or LF, one
 * optional space, the name to the line's end. 1 and the name in [*name, *stop), 0 when none.
 * Only line starts can match, so without a CR in the body (`any_cr`) the walk goes from one
 * LF to the next (a chunk has few lines) instead of stopping at every 'e' of the JSON. */
static int
next_event_name(const char *d, const char *p, const char *end, int any_cr, const char **name,
                const char **stop)
{
    while (p < end) {
        const char *at;
        if (any_cr) {
            at = find(p, end - p, "event:", 6);
            if (at == NULL) {
                return 0;
            }
        }
        else {
            at = p;
        }
        if (end - at >= 6 && memcmp(at, "event:", 6) == 0 &&
            (at == d || at[-1] == '\n' || at[-1] == '\r')) {
            const char *s = at + 6, *e;
            if (s < end && *s == ' ') {
                s++;
            }
            for (e = s; e < end && *e != '\n' && *e != '\r'; e++) {
            }
            *name = s;
            *stop = e;
            return 1;
        }
        if (any_cr) {
            p = at + 1;
        }
        else {
            const char *lf = memchr(at, '\n', (size_t)(end - at));
            if (lf == NULL) {
                return 0;
            }
            p = lf + 1;
        }
    }
    return 0;
}

/* 1 when some (stripped) event name is in `names`, 0 when none is, -1 on an error. */
static int
event_name_in(const char *d, Py_ssize_t n, PyObject *names)
{
    const char *end = d + n, *p = d, *name, *stop;
    int any_cr = memchr(d, '\r', (size_t)n) != NULL;
    while (next_event_name(d, p, end, any_cr, &name, &stop)) {
        int found = stripped_in(name, stop, names);
        if (found != 0) {
            return found;
        }
        p = stop;
    }
    return 0;
}

/* The JSON keys the classifiers look at (_kernel._has_value, _JSON_TYPE), found in one walk
 * over the body's quotes instead of one search per key. */
enum { K_TYPE, K_FINISH, K_USAGE, K_CONTENT, K_TOOLS, K_CHAT, K_COUNT };
static const struct {
    const char *text;
    Py_ssize_t len;
} KEYS[K_COUNT] = {
    {"\"type\"", 6},    {"\"finish_reason\"", 15}, {"\"usage\"", 7},
    {"\"content\"", 9}, {"\"tool_calls\"", 12},    {"\"chat.completion.chunk\"", 23},
};

/* For each byte, the keys whose text starts with a quote and that byte (bit k: KEYS[k]); most
 * quotes in a chunk open a key or value no classifier asks about and cost one lookup. */
static unsigned char KEY_FIRST[256];

static void
init_key_first(void)
{
    for (int k = 0; k < K_COUNT; k++) {
        KEY_FIRST[(unsigned char)KEYS[k].text[1]] |= (unsigned char)(1u << k);
    }
}

typedef struct {
    char found[K_COUNT]; /* K_CHAT: present; K_TYPE: a value in the names; others: _has_value */
    const char *type_at; /* the first "type" value (_JSON_TYPE.search), NULL when none */
    Py_ssize_t type_len;
} Keys;

/* _NOT_NULL_AFTER at `q`: \s*:\s*+ and not null, "", {} or []. */
static int
value_after(const char *q, const char *end)
{
    while (q < end && is_space(*q)) {
        q++;
    }
    if (q >= end || *q != ':') {
        return 0;
    }
    for (q++; q < end && is_space(*q); q++) {
    }
    Py_ssize_t rest = end - q;
    return !((rest >= 4 && memcmp(q, "null", 4) == 0) ||
             (rest >= 2 && (memcmp(q, "\"\"", 2) == 0 || memcmp(q, "{}", 2) == 0 ||
                            memcmp(q, "[]", 2) == 0)));
}

/* _JSON_TYPE's value after a "type" key at `q`: its end (past the closing quote) in *stop and
 * 1 when it is in `names` (NULL: not asked), 0 when not (*stop NULL when the regex does not
 * match), -1. *value is where the value starts. */
static int
type_value_in(const char *q, const char *end, PyObject *names, const char **stop,
              const char **value)
{
    *stop = NULL;
    while (q < end && is_space(*q)) {
        q++;
    }
    if (q >= end || *q != ':') {
        return 0;
    }
    for (q++; q < end && is_space(*q); q++) {
    }
    if (q >= end || *q != '"') {
        return 0;
    }
    const char *start = ++q;
    while (q < end && *q != '"' && *q != '\\') {
        q++;
    }
    if (q >= end || *q != '"') {
        return 0;
    }
    *stop = q + 1;
    *value = start;
    if (names == NULL) {
        return 0;
    }
    PyObject *name = PyBytes_FromStringAndSize(start, q - start);
    if (name == NULL) {
        return -1;
    }
    int found = PySet_Contains(names, name);
    Py_DECREF(name);
    return found;
}

/* One walk: every quote is where a key may start. As in Python, a key's next occurrence is
 * looked for after the end of the last one (after the matched value for "type"); `type_names`
 * NULL: "type" values are not asked; `first_type`: the first "type" value is wanted. */
static int
scan_keys(const char *d, Py_ssize_t n, PyObject *type_names, int first_type, Keys *out)
{
    memset(out, 0, sizeof(*out));
    Py_ssize_t next[K_COUNT] = {0};
    const char *end = d + n, *p = d;
    while (p < end && (p = memchr(p, '"', (size_t)(end - p))) != NULL) {
        unsigned int candidates = p + 1 < end ? KEY_FIRST[(unsigned char)p[1]] : 0;
        if (candidates == 0) {
            p++;
            continue;
        }
        Py_ssize_t pos = p - d;
        for (int k = 0; k < K_COUNT; k++) {
            if (!(candidates & (1u << k)) || pos < next[k] || end - p < KEYS[k].len ||
                memcmp(p, KEYS[k].text, (size_t)KEYS[k].len) != 0) {
                continue;
            }
            const char *q = p + KEYS[k].len;
            next[k] = pos + KEYS[k].len;
            if (k == K_CHAT) {
                out->found[k] = 1;
            }
            else if (k == K_TYPE) {
                int names = type_names != NULL && !out->found[k];
                if (!names && !(first_type && out->type_at == NULL)) {
                    continue;
                }
                const char *stop, *value;
                int in = type_value_in(q, end, names ? type_names : NULL, &stop, &value);
                if (in < 0) {
                    return -1;
                }
                out->found[k] = (char)(out->found[k] || in);
                if (stop != NULL && out->type_at == NULL) {
                    out->type_at = value;
                    out->type_len = stop - 1 - value;
                }
                if (stop == NULL) {
                    next[k] = pos + 1; /* no match here: the regex goes on from the next byte */
                }
                else {
                    next[k] = stop - d;
                }
            }
            else if (!out->found[k]) {
                out->found[k] = (char)value_after(q, end);
            }
        }
        p++;
    }
    return 0;
}

/* _classify._has_value(d, b'"usage"'), without the walk (NDJSON on the direct path): memchr
 * for its 'g', rare in JSON, instead of every quote; as in Python, an occurrence is looked
 * for after the end of the last one. */
static int
has_usage(const char *d, Py_ssize_t n)
{
    const char *end = d + n, *p = d + 4, *after = d;
    while (end - p >= 3 && (p = memchr(p, 'g', (size_t)(end - p - 2))) != NULL) {
        if (p - 4 >= after && memcmp(p - 4, "\"usage\"", 7) == 0) {
            after = p + 3;
            if (value_after(after, end)) {
                return 1;
            }
        }
        p++;
    }
    return 0;
}

/* _classify.is_critical, given the keys of the walk. */
static int
is_critical(const char *d, Py_ssize_t n, PyObject *names, int openai_chat, const Keys *keys)
{
    int found = event_name_in(d, n, names);
    if (found != 0) {
        return found;
    }
    if (keys->found[K_TYPE] || find(d, n, "[DONE]", 6) != NULL) {
        return 1;
    }
    return openai_chat && (keys->found[K_FINISH] || keys->found[K_USAGE]);
}

/* _classify.is_sse_content, given the keys of the walk; `content` NULL: any name counts. */
static int
is_sse_content(const char *d, Py_ssize_t n, PyObject *metadata, PyObject *content,
               int openai_chat, const Keys *keys)
{
    const char *end = d + n;
    const char *data = find(d, n, "data:", 5);
    if (data == NULL) {
        return 0;
    }
    const char *name, *stop_name;
    int any_cr = memchr(d, '\r', (size_t)n) != NULL;
    int named = next_event_name(d, d, end, any_cr, &name, &stop_name);
    if (named) {
        int in = stripped_in(name, stop_name, metadata);
        if (in != 0) {
            return in < 0 ? -1 : 0;
        }
    }
    if (content != NULL) {
        int in;
        if (named) {
            in = stripped_in(name, stop_name, content);
        }
        else if (keys->type_at == NULL) {
            return 0;
        }
        else {
            PyObject *type = PyBytes_FromStringAndSize(keys->type_at, keys->type_len);
            if (type == NULL) {
                return -1;
            }
            in = PySet_Contains(content, type);
            Py_DECREF(type);
        }
        if (in <= 0) {
            return in;
        }
    }
    const char *start = data + 5, *stop = end;
    while (start < stop && is_space(*start)) {
        start++;
    }
    while (stop > start && is_space(stop[-1])) {
        stop--;
    }
    if (stop - start == 6 && memcmp(start, "[DONE]", 6) == 0) {
        return 0;
    }
    if (openai_chat && keys->found[K_CHAT]) {
        return keys->found[K_CONTENT] || keys->found[K_TOOLS];
    }
    return stop > start;
}

/* ScanBase.classify: GENERAL, CONTENT or OTHER, -1 on an error. `body` is non-empty bytes. */
static long
classify(ScanBase *scan, PyObject *body)
{
    if (!scan->fast || scan->pending) {
        return GENERAL;
    }
    if (scan->metadata == NULL || !PyAnySet_Check(scan->metadata) ||
        (!is_none(scan->critical_names) && !PyAnySet_Check(scan->critical_names)) ||
        (!is_none(scan->content_names) && !PyAnySet_Check(scan->content_names))) {
        return GENERAL; /* not what EventScanner sets: the Python path decides */
    }
    if (scan->fmt == FORMAT_CHUNKS) {
        return CONTENT;
    }
    const char *d = PyBytes_AS_STRING(body);
    Py_ssize_t n = PyBytes_GET_SIZE(body);
    if (scan->fmt == FORMAT_SSE) {
        if (n < 3 || find(d, n, "\n\n", 2) != d + n - 2 ||
            memchr(d, '\r', n) != NULL) {
            return GENERAL;
        }
    }
    else {
        Py_ssize_t i = 0;
        while (i < n && is_space(d[i])) {
            i++;
        }
        if (memchr(d, '\n', n) != (const void *)(d + n - 1) || i == n) {
            return GENERAL;
        }
    }
    int critical_asked = !is_none(scan->critical_names);
    PyObject *content = is_none(scan->content_names) ? NULL : scan->content_names;
    Keys keys;
    if ((critical_asked || scan->fmt == FORMAT_SSE) &&
        scan_keys(d, n, critical_asked ? scan->critical_names : NULL,
                  content != NULL && scan->fmt == FORMAT_SSE, &keys) < 0) {
        return -1;
    }
    if (critical_asked) {
        int critical = is_critical(d, n, scan->critical_names, scan->openai_chat, &keys);
        if (critical != 0) {
            return critical < 0 ? -1 : GENERAL;
        }
    }
    /* Token usage, coalesced or not (a format whose usage is not critical, Anthropic's, too):
     * the scanner's general path reads it. The walk found the key when it ran. */
    if (critical_asked || scan->fmt == FORMAT_SSE ? keys.found[K_USAGE] : has_usage(d, n)) {
        return GENERAL;
    }
    if (scan->fmt != FORMAT_SSE) {
        return CONTENT;
    }
    int tokens = is_sse_content(d, n, scan->metadata, content, scan->openai_chat, &keys);
    return tokens < 0 ? -1 : (tokens ? CONTENT : OTHER);
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

static PyMemberDef ScanBase_members[] = {
    {"critical_names", T_OBJECT, offsetof(ScanBase, critical_names), 0, NULL},
    {"metadata", T_OBJECT, offsetof(ScanBase, metadata), 0, NULL},
    {"content_names", T_OBJECT, offsetof(ScanBase, content_names), 0, NULL},
    {"fmt", T_PYSSIZET, offsetof(ScanBase, fmt), 0, NULL},
    {"pending", T_PYSSIZET, offsetof(ScanBase, pending), 0, NULL},
    {"fast", T_BOOL, offsetof(ScanBase, fast), 0, NULL},
    {"openai_chat", T_BOOL, offsetof(ScanBase, openai_chat), 0, NULL},
    {NULL},
};

static PyMethodDef ScanBase_methods[] = {
    {"classify", (PyCFunction)ScanBase_classify, METH_O, "One whole event: CONTENT or OTHER."},
    {NULL},
};

GC_TYPE(ScanBase_Type, ScanBase, "EventScanner's format and rules, and classify().");

/* -- BatchBase ------------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *error; /* exception or None */
    PyObject *ready; /* list of bytes, or None: no batch waiting */
    PyObject *loop;  /* the event loop: its time() stamps the sparse rule */
    Py_ssize_t inflight, max_buffer, max_bytes, max_events, pending_bytes;
    Py_ssize_t ready_bytes, ready_content, ready_events;
    double last_event, last_write, quiet_gap, window; /* loop times and seconds */
    char wanted, eager, write_now;
} BatchBase;

static int
BatchBase_traverse(BatchBase *self, visitproc visit, void *arg)
{
    Py_VISIT(self->error);
    Py_VISIT(self->ready);
    Py_VISIT(self->loop);
    return 0;
}

static int
BatchBase_clear(BatchBase *self)
{
    Py_CLEAR(self->error);
    Py_CLEAR(self->ready);
    Py_CLEAR(self->loop);
    return 0;
}

DEALLOC(BatchBase)

/* BatchBase.add: the code (bits of WAKE and FULL), -1 on an error. */
static long
batch_add(BatchBase *b, PyObject *body, Py_ssize_t size, Py_ssize_t events, Py_ssize_t content,
          int critical)
{
    if (b->ready == NULL || b->ready == Py_None) {
        /* No batch waiting holds no list (open streams are many): the first event makes it. */
        PyObject *ready = PyList_New(0);
        if (ready == NULL) {
            return -1;
        }
        Py_XSETREF(b->ready, ready);
    }
    else if (!PyList_CheckExact(b->ready)) {
        PyErr_SetString(PyExc_TypeError, "the batch's ready is not a list or None");
        return -1;
    }
    if (PyList_Append(b->ready, body) < 0) {
        return -1;
    }
    b->ready_bytes += size;
    b->ready_events += events;
    b->ready_content += content;
    long code = 0;
    if (!b->wanted &&
        (critical || b->ready_events >= b->max_events || b->ready_bytes >= b->max_bytes)) {
        code = WAKE;
    }
    if (b->ready_bytes + b->pending_bytes + b->inflight >= b->max_buffer) {
        code |= FULL;
    }
    return code;
}

static PyObject *
BatchBase_add(BatchBase *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t v[3];
    if (nargs != 5) {
        PyErr_Format(PyExc_TypeError, "add() takes 5 arguments, got %zd", nargs);
        return NULL;
    }
    if (ssize_args(args + 1, 3, 3, v) < 0) {
        return NULL;
    }
    int critical = PyObject_IsTrue(args[4]);
    if (critical < 0) {
        return NULL;
    }
    long code = batch_add(self, args[0], v[0], v[1], v[2], critical);
    return code < 0 ? NULL : PyLong_FromLong(code);
}

static PyMemberDef BatchBase_members[] = {
    {"error", T_OBJECT, offsetof(BatchBase, error), 0, NULL},
    {"ready", T_OBJECT, offsetof(BatchBase, ready), 0, NULL},
    {"inflight", T_PYSSIZET, offsetof(BatchBase, inflight), 0, NULL},
    {"max_buffer", T_PYSSIZET, offsetof(BatchBase, max_buffer), 0, NULL},
    {"max_bytes", T_PYSSIZET, offsetof(BatchBase, max_bytes), 0, NULL},
    {"max_events", T_PYSSIZET, offsetof(BatchBase, max_events), 0, NULL},
    {"pending_bytes", T_PYSSIZET, offsetof(BatchBase, pending_bytes), 0, NULL},
    {"ready_bytes", T_PYSSIZET, offsetof(BatchBase, ready_bytes), 0, NULL},
    {"ready_content", T_PYSSIZET, offsetof(BatchBase, ready_content), 0, NULL},
    {"ready_events", T_PYSSIZET, offsetof(BatchBase, ready_events), 0, NULL},
    {"wanted", T_BOOL, offsetof(BatchBase, wanted), 0, NULL},
    {"loop", T_OBJECT, offsetof(BatchBase, loop), 0, NULL},
    {"last_event", T_DOUBLE, offsetof(BatchBase, last_event), 0, NULL},
    {"last_write", T_DOUBLE, offsetof(BatchBase, last_write), 0, NULL},
    {"quiet_gap", T_DOUBLE, offsetof(BatchBase, quiet_gap), 0, NULL},
    {"window", T_DOUBLE, offsetof(BatchBase, window), 0, NULL},
    {"eager", T_BOOL, offsetof(BatchBase, eager), 0, NULL},
    {"write_now", T_BOOL, offsetof(BatchBase, write_now), 0, NULL},
    {NULL},
};

static PyMethodDef BatchBase_methods[] = {
    {"add", (PyCFunction)(void (*)(void))BatchBase_add, METH_FASTCALL,
     "add(body, size, events, content, critical): join whole events; WAKE/FULL bits."},
    {NULL},
};

GC_TYPE(BatchBase_Type, BatchBase, "Coalescer's buffer, and add().");

/* -- Sender ---------------------------------------------------------------------------------- */

typedef struct Sender Sender;
typedef PyObject *(*chunk_fn)(Sender *, PyObject *);

struct Sender {
    PyObject_HEAD
    /* No wake/room callables: the batch's own wake() and room() methods are called, so a
     * stream holds no bound method objects for them. */
    PyObject *batch, *clock, *done, *general, *record, *scan, *server_send;
    chunk_fn chunk;
};

static int
Sender_traverse(Sender *self, visitproc visit, void *arg)
{
    Py_VISIT(self->batch);
    Py_VISIT(self->clock);
    Py_VISIT(self->done);
    Py_VISIT(self->general);
    Py_VISIT(self->record);
    Py_VISIT(self->scan);
    Py_VISIT(self->server_send);
    return 0;
}

static int
Sender_clear(Sender *self)
{
    Py_CLEAR(self->batch);
    Py_CLEAR(self->clock);
    Py_CLEAR(self->done);
    Py_CLEAR(self->general);
    Py_CLEAR(self->record);
    Py_CLEAR(self->scan);
    Py_CLEAR(self->server_send);
    return 0;
}

DEALLOC(Sender)

static PyObject *
to_general(Sender *self, PyObject *message)
{
    if (self->general == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "streamboost: the sender has no general send");
        return NULL;
    }
    return PyObject_CallOneArg(self->general, message);
}

/* The body of a body message with more to come, when it is non-empty bytes (borrowed from the
 * message), else NULL. Never raises. */
static PyObject *
more_body_chunk(PyObject *message)
{
    if (!PyDict_CheckExact(message)) {
        return NULL;
    }
    PyObject *type = PyDict_GetItemWithError(message, s_type);
    if (type == NULL || (type != s_body_type && (!PyUnicode_CheckExact(type) ||
                                                 PyUnicode_Compare(type, s_body_type) != 0))) {
        PyErr_Clear();
        return NULL;
    }
    if (PyDict_GetItemWithError(message, s_more_body) != Py_True) {
        PyErr_Clear();
        return NULL;
    }
    PyObject *body = PyDict_GetItemWithError(message, s_body);
    if (body == NULL || !PyBytes_CheckExact(body) || PyBytes_GET_SIZE(body) == 0) {
        PyErr_Clear();
        return NULL;
    }
    return body;
}

/* Batch mode's general send: the batch's own general() when the sender has no general (a
 * coalesced stream then holds no bound method for it), else the stored callable. */
static PyObject *
batch_general(Sender *self, PyObject *message)
{
    if (is_none(self->general) && self->batch != NULL) {
        return PyObject_CallMethodOneArg(self->batch, s_general, message);
    }
    return to_general(self, message);
}

static int
fields_ready(Sender *self)
{
    return self->scan != NULL && PyObject_TypeCheck(self->scan, &ScanBase_Type) &&
           self->record != NULL && PyObject_TypeCheck(self->record, &RecordBase_Type);
}

static PyObject *
chunk_direct(Sender *self, PyObject *message)
{
    PyObject *body = more_body_chunk(message);
    if (body == NULL || !fields_ready(self) || self->clock == NULL || self->server_send == NULL) {
        return to_general(self, message);
    }
    Py_INCREF(message); /* keeps the borrowed body alive while Python code runs */
    long kind = classify((ScanBase *)self->scan, body);
    PyObject *result = NULL;
    if (kind > 0) {
        PyObject *now = PyObject_CallNoArgs(self->clock);
        double at = now != NULL ? PyFloat_AsDouble(now) : -1.0;
        if (now != NULL && !(at == -1.0 && PyErr_Occurred())) {
            RecordBase *rec = (RecordBase *)self->record;
            rec->chunks_in += 1;
            rec->events += 1;
            record_produced(rec, kind == CONTENT, at);
            record_wrote(rec, PyBytes_GET_SIZE(body), kind == CONTENT, now);
            result = PyObject_CallOneArg(self->server_send, message);
        }
        Py_XDECREF(now);
    }
    else if (kind == 0) {
        result = to_general(self, message);
    }
    Py_DECREF(message);
    return result;
}

/* No batch waiting: the Coalescer's write-at-once rule (eager until the first token, the
 * event at least `quiet_gap` after the one before, or a window since the last write) for one
 * whole event, taken here: the app's own message goes to the server, as in direct mode, so
 * a sparse stream costs no Python per event. Anything else: the general send. */
static PyObject *
batch_now(Sender *self, BatchBase *b, PyObject *body, PyObject *message)
{
    Py_INCREF(message); /* keeps the borrowed body alive while Python code runs */
    PyObject *result = NULL;
    long kind = classify((ScanBase *)self->scan, body);
    if (kind == 0) {
        result = batch_general(self, message);
        Py_DECREF(message);
        return result;
    }
    if (kind < 0) {
        Py_DECREF(message);
        return NULL;
    }
    PyObject *owner = Py_NewRef(self->batch);
    PyObject *t = b->loop != NULL ? PyObject_CallMethodNoArgs(b->loop, s_time) : NULL;
    double now = t != NULL ? PyFloat_AsDouble(t) : -1.0;
    Py_XDECREF(t);
    if (t == NULL || (now == -1.0 && PyErr_Occurred())) {
        if (t == NULL && !PyErr_Occurred()) {
            PyErr_SetString(PyExc_RuntimeError, "streamboost: the batch has no loop");
        }
        goto done;
    }
    int quiet = now - b->last_event >= b->quiet_gap;
    b->last_event = now;
    if (!(b->eager || quiet || now - b->last_write >= b->window)) {
        result = batch_general(self, message); /* buffers: the Coalescer arms its timer */
        goto done;
    }
    /* Two clock readings, as on the Coalescer's own path: the app's send, then the write. */
    RecordBase *rec = (RecordBase *)self->record;
    PyObject *sent = PyObject_CallNoArgs(self->clock);
    double at = sent != NULL ? PyFloat_AsDouble(sent) : -1.0;
    Py_XDECREF(sent);
    if (sent == NULL || (at == -1.0 && PyErr_Occurred())) {
        goto done;
    }
    rec->chunks_in += 1;
    rec->events += 1;
    record_produced(rec, kind == CONTENT, at);
    PyObject *stamp = PyObject_CallNoArgs(self->clock);
    if (stamp != NULL) {
        if (kind == CONTENT && is_none(rec->first_token_at)) {
            b->eager = 0; /* the first token is out: batching may start */
        }
        b->last_write = now;
        record_wrote(rec, PyBytes_GET_SIZE(body), kind == CONTENT, stamp);
        result = PyObject_CallOneArg(self->server_send, message);
    }
    Py_XDECREF(stamp);
done:
    Py_DECREF(owner);
    Py_DECREF(message);
    return result;
}

static PyObject *
chunk_batch(Sender *self, PyObject *message)
{
    PyObject *body = more_body_chunk(message);
    if (body == NULL || !fields_ready(self) || self->batch == NULL ||
        !PyObject_TypeCheck(self->batch, &BatchBase_Type) || self->done == NULL ||
        self->clock == NULL) {
        return batch_general(self, message);
    }
    BatchBase *b = (BatchBase *)self->batch;
    if (b->pending_bytes != 0 || !is_none(b->error)) {
        return batch_general(self, message);
    }
    if (b->ready == NULL || !PyList_CheckExact(b->ready) || PyList_GET_SIZE(b->ready) == 0) {
        if (b->write_now && b->inflight == 0 && self->server_send != NULL) {
            return batch_now(self, b, body, message);
        }
        return batch_general(self, message); /* no batch waiting: the Coalescer's rules */
    }
    Py_INCREF(message);
    PyObject *result = NULL;
    long kind = classify((ScanBase *)self->scan, body);
    if (kind == 0) {
        result = batch_general(self, message);
    }
    else if (kind > 0) {
        PyObject *now = PyObject_CallNoArgs(self->clock); /* the app's time: gaps, stalls */
        double at = now != NULL ? PyFloat_AsDouble(now) : -1.0;
        Py_XDECREF(now);
        if (now == NULL || (at == -1.0 && PyErr_Occurred())) {
            Py_DECREF(message);
            return NULL;
        }
        RecordBase *rec = (RecordBase *)self->record;
        rec->chunks_in += 1;
        rec->events += 1;
        record_produced(rec, kind == CONTENT, at);
        PyObject *owner = Py_NewRef(self->batch); /* wake and room run Python code */
        long code = batch_add(b, body, PyBytes_GET_SIZE(body), 1, kind == CONTENT, 0);
        if (code >= 0 && (code & WAKE)) {
            PyObject *woken = PyObject_CallMethodNoArgs(owner, s_wake);
            if (woken == NULL) {
                code = -1;
            }
            Py_XDECREF(woken);
        }
        if (code >= 0 && (code & FULL)) {
            result = PyObject_CallMethodNoArgs(owner, s_room);
        }
        else if (code >= 0) {
            result = Py_NewRef(self->done);
        }
        Py_DECREF(owner);
    }
    Py_DECREF(message);
    return result;
}

static PyObject *
Sender_send(Sender *self, PyObject *message)
{
    return self->chunk(self, message);
}

static PyObject *
Sender_use(Sender *self, PyObject *mode)
{
    long m = PyLong_AsLong(mode);
    if (m == -1 && PyErr_Occurred()) {
        return NULL;
    }
    self->chunk = m == MODE_DIRECT ? chunk_direct : m == MODE_BATCH ? chunk_batch : to_general;
    Py_RETURN_NONE;
}

static int
Sender_init(Sender *self, PyObject *args, PyObject *kwargs)
{
    PyObject *general;
    if (!PyArg_ParseTuple(args, "O:Sender", &general)) {
        return -1;
    }
    Py_XSETREF(self->general, Py_NewRef(general));
    self->chunk = to_general;
    return 0;
}

static PyMemberDef Sender_members[] = {
    {"batch", T_OBJECT, offsetof(Sender, batch), 0, NULL},
    {"clock", T_OBJECT, offsetof(Sender, clock), 0, NULL},
    {"done", T_OBJECT, offsetof(Sender, done), 0, NULL},
    {"general", T_OBJECT, offsetof(Sender, general), 0, NULL},
    {"record", T_OBJECT, offsetof(Sender, record), 0, NULL},
    {"scan", T_OBJECT, offsetof(Sender, scan), 0, NULL},
    {"server_send", T_OBJECT, offsetof(Sender, server_send), 0, NULL},
    {NULL},
};

static PyMethodDef Sender_methods[] = {
    {"send", (PyCFunction)Sender_send, METH_O, "The app's send."},
    {"use", (PyCFunction)Sender_use, METH_O, "Switch to a MODE_* once, at the response start."},
    {NULL},
};

GC_TYPE(Sender_Type, Sender, "The app's send for one response: the kernel's chunks, then general.");

/* -- module ---------------------------------------------------------------------------------- */

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "streamboost._stream._speedups",
    .m_doc = "The C twin of streamboost's fast-path kernel (optional).",
    .m_size = -1,
};

static int
intern(PyObject **slot, const char *text)
{
    *slot = PyUnicode_InternFromString(text);
    return *slot == NULL ? -1 : 0;
}

static int
constant(PyObject *table, const char *name, long *slot)
{
    PyObject *value = PyObject_GetAttrString(table, name);
    if (value == NULL) {
        return -1;
    }
    *slot = PyLong_AsLong(value);
    Py_DECREF(value);
    return *slot == -1 && PyErr_Occurred() ? -1 : 0;
}

PyMODINIT_FUNC
PyInit__speedups(void)
{
    init_key_first();
    if (intern(&s_type, "type") < 0 || intern(&s_body_type, "http.response.body") < 0 ||
        intern(&s_more_body, "more_body") < 0 || intern(&s_body, "body") < 0 ||
        intern(&s_wake, "wake") < 0 || intern(&s_room, "room") < 0 ||
        intern(&s_general, "general") < 0 || intern(&s_time, "time") < 0) {
        return NULL;
    }
    PyObject *table = PyImport_ImportModule("streamboost._stream._table");
    if (table == NULL) {
        return NULL;
    }
    struct {
        const char *name;
        long *slot;
    } constants[] = {
        {"GENERAL", &GENERAL},         {"CONTENT", &CONTENT},
        {"OTHER", &OTHER},             {"FORMAT_SSE", &FORMAT_SSE},
        {"FORMAT_LINES", &FORMAT_LINES}, {"FORMAT_CHUNKS", &FORMAT_CHUNKS},
        {"WAKE", &WAKE},               {"FULL", &FULL},
        {"MODE_GENERAL", &MODE_GENERAL}, {"MODE_DIRECT", &MODE_DIRECT},
        {"MODE_BATCH", &MODE_BATCH},
    };
    for (size_t i = 0; i < sizeof(constants) / sizeof(constants[0]); i++) {
        if (constant(table, constants[i].name, constants[i].slot) < 0) {
            Py_DECREF(table);
            return NULL;
        }
    }
    PyObject *bounds = PyObject_GetAttrString(table, "GAP_BOUNDS");
    Py_DECREF(table);
    if (bounds == NULL) {
        return NULL;
    }
    PyObject *seq = PySequence_Fast(bounds, "GAP_BOUNDS must be a tuple");
    Py_DECREF(bounds);
    if (seq == NULL) {
        return NULL;
    }
    GAP_N = PySequence_Fast_GET_SIZE(seq);
    if (GAP_N + 1 > GAP_SLOTS) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "_table.GAP_BOUNDS has more bounds than GAP_SLOTS - 1");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < GAP_N; i++) {
        GAP_BOUNDS[i] = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(seq, i));
        if (GAP_BOUNDS[i] == -1.0 && PyErr_Occurred()) {
            Py_DECREF(seq);
            return NULL;
        }
    }
    Py_DECREF(seq);
    RecordBase_Type.tp_getset = RecordBase_getset;
    Sender_Type.tp_init = (initproc)Sender_init;
    PyTypeObject *types[] = {&RecordBase_Type, &ScanBase_Type, &BatchBase_Type, &Sender_Type};
    const char *names[] = {"RecordBase", "ScanBase", "BatchBase", "Sender"};
    for (int i = 0; i < 4; i++) {
        if (PyType_Ready(types[i]) < 0) {
            return NULL;
        }
    }
    PyObject *module = PyModule_Create(&speedups_module);
    if (module == NULL) {
        return NULL;
    }
    for (int i = 0; i < 4; i++) {
        if (PyModule_AddObject(module, names[i], Py_NewRef((PyObject *)types[i])) < 0) {
            Py_DECREF(types[i]);
            Py_DECREF(module);
            return NULL;
        }
    }
    return module;
}
