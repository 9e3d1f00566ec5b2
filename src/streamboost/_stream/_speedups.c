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
#include <stdint.h>
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
    /* The memo of the last content event's shape (see memo_probe): bytes [0, memo_off) and
     * the last memo_tail bytes around its "content" string; memo_tail 0: none. In the
     * padding after the flags, plus the 16-byte digest: 16 bytes per stream. */
    uint16_t memo_off, memo_tail;
    unsigned char memo_learns; /* memos replaced by another shape; MEMO_LEARNS: stop */
    uint64_t memo_digest[2];
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

/* -- name sets: is a byte range in a frozenset of bytes, without making a bytes object ------ */

/* The classifiers ask whether an event name or a "type" value is in one of the scanner's sets
 * (the preset's names: the same few frozensets for every response). A bytes object, its hash
 * and PySet_Contains cost some 400 instructions a lookup; a compiled index of the set's names
 * by length answers with a memcmp or two. The compiled sets live in one small table shared by
 * every stream (no memory per stream), each holding a reference to its frozenset: immutable,
 * so the index stays true, and its elements keep the bytes the index points into alive. */
#define NAME_SETS 8
#define NAME_LONG 64 /* names of this length or longer share the last length group */

typedef struct {
    PyObject *set;       /* the frozenset (a strong reference); NULL: a free slot */
    PyObject *items;     /* a list of its elements, in the order of `text` */
    const char **text;   /* each name's bytes, grouped by length */
    Py_ssize_t *len;
    Py_ssize_t group[NAME_LONG + 2]; /* the names of length group g: [group[g], group[g + 1]) */
    char exact;          /* 0: an element is not exact bytes: ask PySet_Contains */
} NameSet;

static NameSet NAME_SET[NAME_SETS];
static int name_set_next; /* the slot the next compiled set replaces (round robin) */

static void
name_set_free(NameSet *ns)
{
    PyMem_Free((void *)ns->text);
    PyMem_Free(ns->len);
    ns->text = NULL;
    ns->len = NULL;
    Py_CLEAR(ns->items);
    Py_CLEAR(ns->set);
}

/* The compiled form of `set`, NULL when it has none (not a frozenset, or out of memory:
 * the caller then asks PySet_Contains, which raises what there is to raise). */
static NameSet *
name_set(PyObject *set)
{
    /* a set's own slot first (where it is put when that slot is free), then any */
    int own = (int)(((uintptr_t)set >> 4) % NAME_SETS);
    if (NAME_SET[own].set == set) {
        return &NAME_SET[own];
    }
    for (int i = 0; i < NAME_SETS; i++) {
        if (NAME_SET[i].set == set) {
            return &NAME_SET[i];
        }
    }
    if (!PyFrozenSet_CheckExact(set)) {
        return NULL;
    }
    PyObject *items = PySequence_List(set);
    if (items == NULL) {
        PyErr_Clear();
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(items);
    const char **text = PyMem_Malloc(sizeof(*text) * (size_t)(n + 1));
    Py_ssize_t *len = PyMem_Malloc(sizeof(*len) * (size_t)(n + 1));
    PyObject *sorted = PyList_New(n);
    if (text == NULL || len == NULL || sorted == NULL) {
        PyMem_Free((void *)text);
        PyMem_Free(len);
        Py_XDECREF(sorted);
        Py_DECREF(items);
        PyErr_Clear();
        return NULL;
    }
    NameSet *ns = &NAME_SET[own];
    if (ns->set != NULL) {
        ns = &NAME_SET[name_set_next];
        name_set_next = (name_set_next + 1) % NAME_SETS;
    }
    name_set_free(ns);
    memset(ns->group, 0, sizeof(ns->group));
    ns->exact = 1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyList_GET_ITEM(items, i);
        if (!PyBytes_CheckExact(item)) {
            ns->exact = 0; /* a str or a bytes subclass: equality is theirs to say */
            break;
        }
        Py_ssize_t size = PyBytes_GET_SIZE(item);
        ns->group[(size < NAME_LONG ? size : NAME_LONG) + 1] += 1;
    }
    for (int g = 1; g < NAME_LONG + 2; g++) {
        ns->group[g] += ns->group[g - 1];
    }
    Py_ssize_t fill[NAME_LONG + 1];
    memcpy(fill, ns->group, sizeof(fill));
    for (Py_ssize_t i = 0; ns->exact && i < n; i++) {
        PyObject *item = PyList_GET_ITEM(items, i);
        Py_ssize_t size = PyBytes_GET_SIZE(item);
        Py_ssize_t at = fill[size < NAME_LONG ? size : NAME_LONG]++;
        text[at] = PyBytes_AS_STRING(item);
        len[at] = size;
        PyList_SET_ITEM(sorted, at, Py_NewRef(item));
    }
    Py_DECREF(items);
    if (!ns->exact) {
        /* unfilled slots of `sorted` are NULL, which list_dealloc skips */
        Py_DECREF(sorted);
        sorted = NULL;
    }
    ns->set = Py_NewRef(set);
    ns->items = sorted;
    ns->text = text;
    ns->len = len;
    return ns;
}

/* 1 when bytes(start[:size]) is in `names` (a set of bytes), 0 when not, -1 on an error. */
static int
name_in(PyObject *names, const char *start, Py_ssize_t size)
{
    NameSet *ns = name_set(names);
    if (ns != NULL && ns->exact) {
        int g = size < NAME_LONG ? (int)size : NAME_LONG;
        for (Py_ssize_t i = ns->group[g]; i < ns->group[g + 1]; i++) {
            if (ns->len[i] == size && memcmp(ns->text[i], start, (size_t)size) == 0) {
                return 1;
            }
        }
        return 0;
    }
    PyObject *value = PyBytes_FromStringAndSize(start, size);
    if (value == NULL) {
        return -1;
    }
    int found = PySet_Contains(names, value);
    Py_DECREF(value);
    return found;
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
    return name_in(names, start, end - start);
}

/* -- event names ------------------------------------------------------------------------------ */

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
            e = memchr(s, '\n', (size_t)(end - s));
            if (e == NULL) {
                e = end;
            }
            if (any_cr) {
                const char *cr = memchr(s, '\r', (size_t)(e - s));
                if (cr != NULL) {
                    e = cr;
                }
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

/* The first event name of a body (_EVENT_NAME.search), found once for both classifiers. */
typedef struct {
    const char *name, *stop; /* the name's bytes, unstripped; name NULL: the body has none */
    int any_cr;
} FirstName;

/* 1 when some (stripped) event name is in `names`, 0 when none is, -1 on an error. */
static int
event_name_in(const char *d, Py_ssize_t n, PyObject *names, const FirstName *first)
{
    const char *end = d + n, *name = first->name, *stop = first->stop;
    if (name == NULL) {
        return 0;
    }
    do {
        int found = stripped_in(name, stop, names);
        if (found != 0) {
            return found;
        }
    } while (next_event_name(d, stop, end, first->any_cr, &name, &stop));
    return 0;
}

/* -- the JSON keys ---------------------------------------------------------------------------- */

/* The JSON keys the classifiers look at (_classify._has_value, _JSON_TYPE): with critical
 * events asked, found together in one walk (scan_keys); without, each looked for on its own
 * when a classifier asks (find_key). */
enum { K_TYPE, K_FINISH, K_USAGE, K_CONTENT, K_TOOLS, K_CHAT, K_COUNT };
static const struct {
    const char *text;
    Py_ssize_t len;
} KEYS[K_COUNT] = {
    {"\"type\"", 6},    {"\"finish_reason\"", 15}, {"\"usage\"", 7},
    {"\"content\"", 9}, {"\"tool_calls\"", 12},    {"\"chat.completion.chunk\"", 23},
};

/* Where each key has a byte that is rare in JSON, for find_rare's memchr: 'y', '_', 'g', the
 * 'c' of "content" (none is rare), '_', '.'. */
static const Py_ssize_t KEY_RARE[K_COUNT] = {2, 7, 4, 1, 5, 5};

/* For each byte, the keys whose text starts with a quote and that byte (bit k: KEYS[k]); most
 * quotes in a chunk open a key or value no classifier asks about and cost one lookup. */
static unsigned char KEY_FIRST[256];
static unsigned char VALUE_STOP[256]; /* the bytes a "type" value ends at: '"', '\\', NUL */
static uint32_t key_word[K_COUNT]; /* each key's first four bytes (every key has 6 or more) */

/* The distinct second bytes of KEYS (the vector walk compares 16 bytes with each at once);
 * more than KEY_LETTERS of them: the vector walk is off (key_letters 0). */
#define KEY_LETTERS 4
static char key_letter[KEY_LETTERS];
static int key_letters;

static void
init_key_first(void)
{
    VALUE_STOP['"'] = VALUE_STOP['\\'] = VALUE_STOP[0] = 1;
    for (int k = 0; k < K_COUNT; k++) {
        KEY_FIRST[(unsigned char)KEYS[k].text[1]] |= (unsigned char)(1u << k);
        memcpy(&key_word[k], KEYS[k].text, 4);
    }
    for (int c = 0; c < 256; c++) {
        if (KEY_FIRST[c] == 0) {
            continue;
        }
        if (key_letters == KEY_LETTERS) {
            key_letters = 0;
            return;
        }
        key_letter[key_letters++] = (char)c;
    }
    for (int i = key_letters; i < KEY_LETTERS; i++) {
        key_letter[i] = key_letter[0]; /* repeats compare the same byte again */
    }
}

typedef struct {
    char found[K_COUNT]; /* K_CHAT: present; K_TYPE: a value in the names; others: _has_value */
    const char *type_at; /* the first "type" value (_JSON_TYPE.search), NULL when none */
    Py_ssize_t type_len;
    /* What the format checks and the classifiers ask of the bytes, seen in the same walk: */
    Py_ssize_t first_lf;   /* the first LF, -1: none */
    Py_ssize_t first_pair; /* the first "\n\n" (a blank line, without CRs), -1: none */
    char any_cr;           /* some CR */
    char done;             /* "[DONE]" somewhere */
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
    /* To the value's end, a quote or a backslash. `end` is a bytes object's end, where CPython
     * keeps a NUL: the table stops there too, so no bound test per byte (a NUL before it is
     * passed, as the regex does). */
    for (;;) {
        while (!VALUE_STOP[(unsigned char)*q]) {
            q++;
        }
        if (*q != '\0' || q >= end) {
            break;
        }
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
    return name_in(names, start, q - start);
}

/* One walk's state: as in Python, a key's next occurrence is looked for after the end of the
 * last one (after the matched value for "type"). */
typedef struct {
    const char *d, *end;
    PyObject *type_names; /* NULL: "type" values are not asked */
    int first_type;       /* the first "type" value is wanted */
    Py_ssize_t next[K_COUNT];
    Keys *out;
} Walk;

/* The index of the lowest set bit of `bits` (not 0). */
static inline int
lowest_bit(unsigned int bits)
{
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_ctz(bits);
#else
    int i = 0;
    while (!(bits & 1u)) {
        bits >>= 1;
        i++;
    }
    return i;
#endif
}

/* The keys that may start at the quote `p` (`candidates`: KEY_FIRST of the byte after it). */
static inline int
keys_at(Walk *w, const char *p, unsigned int candidates)
{
    Keys *out = w->out;
    const char *end = w->end;
    Py_ssize_t pos = p - w->d;
    if (end - p < 6) {
        return 0; /* no key is shorter */
    }
    uint32_t word;
    memcpy(&word, p, 4); /* one load: most candidates differ from every key in these bytes */
    while (candidates) {
        int k = lowest_bit(candidates);
        candidates &= candidates - 1;
        if (word != key_word[k] || end - p < KEYS[k].len || pos < w->next[k] ||
            memcmp(p + 4, KEYS[k].text + 4, (size_t)KEYS[k].len - 4) != 0) {
            continue;
        }
        const char *q = p + KEYS[k].len;
        w->next[k] = pos + KEYS[k].len;
        if (k == K_CHAT) {
            out->found[k] = 1;
        }
        else if (k == K_TYPE) {
            int names = w->type_names != NULL && !out->found[k];
            if (!names && !(w->first_type && out->type_at == NULL)) {
                continue;
            }
            const char *stop, *value;
            int in = type_value_in(q, end, names ? w->type_names : NULL, &stop, &value);
            if (in < 0) {
                return -1;
            }
            out->found[k] = (char)(out->found[k] || in);
            if (stop != NULL && out->type_at == NULL) {
                out->type_at = value;
                out->type_len = stop - 1 - value;
            }
            if (stop == NULL) {
                w->next[k] = pos + 1; /* no match here: the regex goes on from the next byte */
            }
            else {
                w->next[k] = stop - w->d;
            }
        }
        else if (!out->found[k]) {
            out->found[k] = (char)value_after(q, end);
        }
    }
    return 0;
}

#if defined(__SSE2__) && (defined(__GNUC__) || defined(__clang__))
#include <emmintrin.h>
#define VECTOR_WALK 1
#endif

/* A byte the walk stops at (an LF, a CR, a '[' before a 'D', or a quote) at `p`. */
static inline int
byte_at(Walk *w, const char *p)
{
    Keys *out = w->out;
    const char *d = w->d, *end = w->end;
    switch (*p) {
    case '\n':
        if (out->first_lf < 0) {
            out->first_lf = p - d;
        }
        if (out->first_pair < 0 && p + 1 < end && p[1] == '\n') {
            out->first_pair = p - d;
        }
        return 0;
    case '\r':
        out->any_cr = 1;
        return 0;
    case '[':
        if (end - p >= 6 && memcmp(p, "[DONE]", 6) == 0) {
            out->done = 1;
        }
        return 0;
    case '"':
        if (p + 1 < end) {
            unsigned int candidates = KEY_FIRST[(unsigned char)p[1]];
            if (candidates) {
                return keys_at(w, p, candidates);
            }
        }
        return 0;
    default:
        return 0;
    }
}

/* One walk over the body: the keys (every quote is where a key may start; only a quote
 * followed by a key's second byte is looked at, in order), the LFs, CRs and "[DONE]". With
 * SSE2, 16 bytes at a time, a few vector compares each: a 200-byte OpenAI chunk has some 35
 * quotes, and a memchr call per quote cost ~25 instructions; its LFs, CRs and '[' were one
 * memchr pass each. Only the rare hits (a key's quote, an LF, a "[D") are looked at one by
 * one. The last block overlaps the one before it. */
static int
scan_keys(const char *d, Py_ssize_t n, PyObject *type_names, int first_type, Keys *out)
{
    memset(out, 0, sizeof(*out));
    out->first_lf = out->first_pair = -1;
    Walk w = {d, d + n, type_names, first_type, {0}, out};
    Py_ssize_t i = 0;
#ifdef VECTOR_WALK
    if (key_letters && n >= 17) {
        const __m128i quote = _mm_set1_epi8('"'), lf = _mm_set1_epi8('\n');
        const __m128i cr = _mm_set1_epi8('\r'), bracket = _mm_set1_epi8('[');
        const __m128i big_d = _mm_set1_epi8('D');
        const __m128i l0 = _mm_set1_epi8(key_letter[0]), l1 = _mm_set1_epi8(key_letter[1]);
        const __m128i l2 = _mm_set1_epi8(key_letter[2]), l3 = _mm_set1_epi8(key_letter[3]);
        __m128i crs = _mm_setzero_si128();
        for (Py_ssize_t done = 0; done < n - 1;) {
            Py_ssize_t at = done + 17 <= n ? done : n - 17;
            __m128i here = _mm_loadu_si128((const __m128i *)(d + at));
            __m128i after = _mm_loadu_si128((const __m128i *)(d + at + 1));
            __m128i letter = _mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(after, l0), _mm_cmpeq_epi8(after, l1)),
                _mm_or_si128(_mm_cmpeq_epi8(after, l2), _mm_cmpeq_epi8(after, l3)));
            __m128i hits = _mm_or_si128(
                _mm_and_si128(_mm_cmpeq_epi8(here, quote), letter),
                _mm_or_si128(_mm_cmpeq_epi8(here, lf),
                             _mm_and_si128(_mm_cmpeq_epi8(here, bracket),
                                           _mm_cmpeq_epi8(after, big_d))));
            crs = _mm_or_si128(crs, _mm_cmpeq_epi8(here, cr));
            unsigned int bits = (unsigned int)_mm_movemask_epi8(hits);
            if (bits) {
                bits &= ~((1u << (done - at)) - 1u); /* the overlap was seen */
                while (bits) {
                    const char *p = d + at + lowest_bit(bits);
                    bits &= bits - 1;
                    if (byte_at(&w, p) < 0) {
                        return -1;
                    }
                }
            }
            done = at + 16;
        }
        out->any_cr = _mm_movemask_epi8(crs) != 0;
        i = n - 1; /* the last byte: an LF or a CR (nothing else starts there) */
    }
#endif
    for (; i < n; i++) {
        if (byte_at(&w, d + i) < 0) {
            return -1;
        }
    }
    return 0;
}

/* -- the keys looked for one at a time (no coalescing: no critical events asked) ---------- */


#ifdef VECTOR_WALK
/* The places in [at, at + 16) where KEYS[k] may start (its first and last letter there). */
static inline unsigned int
key_places(const char *at, Py_ssize_t len, __m128i first, __m128i last)
{
    __m128i a = _mm_loadu_si128((const __m128i *)(at + 1));
    __m128i b = _mm_loadu_si128((const __m128i *)(at + len - 2));
    return (unsigned int)_mm_movemask_epi8(
        _mm_and_si128(_mm_cmpeq_epi8(a, first), _mm_cmpeq_epi8(b, last)));
}

/* The first of the places (`bits`, from `at`) where the whole key is, NULL when none. */
static inline const char *
key_in(const char *at, unsigned int bits, const char *key, Py_ssize_t len)
{
    for (; bits; bits &= bits - 1) {
        const char *place = at + lowest_bit(bits);
        if (memcmp(place, key, (size_t)len) == 0) {
            return place;
        }
    }
    return NULL;
}
#endif

/* The first KEYS[k] in [p, end), NULL when none, by memchr for a byte of the key that is rare
 * in JSON (KEY_RARE), not for its quote: a 200-byte OpenAI chunk has some 35 quotes, and a
 * memchr call costs ~25 instructions. */
static const char *
find_rare(const char *p, const char *end, int k)
{
    const char *key = KEYS[k].text;
    Py_ssize_t len = KEYS[k].len, off = KEY_RARE[k];
    while (end - p >= len) {
        const char *hit = memchr(p + off, key[off], (size_t)(end - p - len + 1));
        if (hit == NULL) {
            return NULL;
        }
        if (memcmp(hit - off, key, (size_t)len) == 0) {
            return hit - off;
        }
        p = hit - off + 1;
    }
    return NULL;
}

/* The first KEYS[k] in [p, end) (`d` the body's start), NULL when none. "content" has no
 * byte that is rare in JSON: with SSE2, 16 places at a time are tested for its first and last
 * letter, two compares, and only the rare places with both are compared whole; the last
 * block overlaps the one before it (or starts before `p`). The other keys: find_rare. */
static const char *
find_key(const char *d, const char *p, const char *end, int k)
{
#ifdef VECTOR_WALK
    const char *key = KEYS[k].text;
    Py_ssize_t len = KEYS[k].len;
    if (k == K_CONTENT && end - d >= len + 15) {
        const __m128i first = _mm_set1_epi8(key[1]), last = _mm_set1_epi8(key[len - 2]);
        /* places p .. p + 15, each compared whole up to p + 15 + len: end - p >= len + 15 */
        for (; end - p >= len + 15; p += 16) {
            unsigned int bits = key_places(p, len, first, last);
            if (bits) {
                const char *found = key_in(p, bits, key, len);
                if (found != NULL) {
                    return found;
                }
            }
        }
        if (end - p < len) {
            return NULL;
        }
        const char *at = end - len - 15; /* before p: those places were seen */
        return key_in(at, key_places(at, len, first, last) & ~((1u << (p - at)) - 1u), key,
                      len);
    }
#endif
    (void)d;
    return find_rare(p, end, k);
}

/* _classify._has_value(d, KEYS[k]): some occurrence of the key has a non-null value after it;
 * as in Python, the next occurrence is looked for after the end of the last. */
static int
has_value(const char *d, Py_ssize_t n, int k)
{
    const char *end = d + n, *p = d;
    while ((p = find_key(d, p, end, k)) != NULL) {
        p += KEYS[k].len;
        if (value_after(p, end)) {
            return 1;
        }
    }
    return 0;
}

/* _JSON_TYPE.finditer over the body: 1 when some "type" value is in `names`, 0 when none, -1
 * on an error; `names` NULL: the first value's place in *value and *size (NULL: none) and 0.
 * As the regex does, a "type" key without a matching value is passed by one byte. */
static int
type_value(const char *d, Py_ssize_t n, PyObject *names, const char **value, Py_ssize_t *size)
{
    const char *end = d + n, *p = d;
    *value = NULL;
    while ((p = find_key(d, p, end, K_TYPE)) != NULL) {
        const char *stop, *start;
        int in = type_value_in(p + KEYS[K_TYPE].len, end, names, &stop, &start);
        if (in != 0) {
            return in;
        }
        if (stop == NULL) {
            p += 1;
            continue;
        }
        if (names == NULL) {
            *value = start;
            *size = stop - 1 - start;
            return 0;
        }
        p = stop;
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

/* -- the classifiers -------------------------------------------------------------------------- */

/* _classify.is_critical, given the keys of the walk. */
static int
is_critical(const char *d, Py_ssize_t n, PyObject *names, int openai_chat, const Keys *keys,
            const FirstName *first)
{
    int found = event_name_in(d, n, names, first);
    if (found != 0) {
        return found;
    }
    if (keys->found[K_TYPE] || keys->done) {
        return 1;
    }
    return openai_chat && (keys->found[K_FINISH] || keys->found[K_USAGE]);
}

/* _classify.is_sse_content; `content` NULL: any name counts. `keys`: the walk's, NULL: each
 * key is looked for when asked. *chat is set to 1 when the answer is an OpenAI chat chunk's
 * "content" value (the shape the memo learns). */
static int
is_sse_content(const char *d, Py_ssize_t n, PyObject *metadata, PyObject *content,
               int openai_chat, const Keys *keys, const FirstName *first, int *chat)
{
    const char *end = d + n;
    const char *data = find(d, n, "data:", 5);
    if (data == NULL) {
        return 0;
    }
    if (first->name != NULL) {
        int in = stripped_in(first->name, first->stop, metadata);
        if (in != 0) {
            return in < 0 ? -1 : 0;
        }
    }
    if (content != NULL) {
        int in;
        if (first->name != NULL) {
            in = stripped_in(first->name, first->stop, content);
        }
        else {
            const char *value = keys != NULL ? keys->type_at : NULL;
            Py_ssize_t size = keys != NULL ? keys->type_len : 0;
            if (keys == NULL && type_value(d, n, NULL, &value, &size) < 0) {
                return -1;
            }
            if (value == NULL) {
                return 0;
            }
            in = name_in(content, value, size);
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
    if (keys != NULL) {
        if (openai_chat && keys->found[K_CHAT]) {
            *chat = keys->found[K_CONTENT];
            return keys->found[K_CONTENT] || keys->found[K_TOOLS];
        }
    }
    else if (openai_chat && find_key(d, d, end, K_CHAT) != NULL) {
        *chat = has_value(d, n, K_CONTENT);
        return *chat || has_value(d, n, K_TOOLS);
    }
    return stop > start;
}

/* -- the memo of the last content event's shape ----------------------------------------------- */

/* An OpenAI stream's content chunks differ only in their "content" string: the id, object,
 * created, model and the tail after the string ("finish_reason":null, ...) repeat. For the
 * last chunk classified CONTENT the memo keeps where that string starts (memo_off) and how
 * many bytes follow it (memo_tail), and a digest of those bytes; a chunk whose bytes there
 * have the same digest and whose string is a plain one (memo_value_plain) is CONTENT too,
 * without the walk. Why that is exact but for a digest collision: docs/architecture.md
 * (Decisions, "The classify memo"). The digest is NH (UMAC's hash) over 16-byte blocks with a
 * per-process random key: for two different byte strings of one length, the chance over the
 * key that their 128-bit digests agree is at most 2^-64. The Python twin has no memo; its
 * answers are the same. Where the compiler has no 128-bit product the memo is off. */
#if defined(__SIZEOF_INT128__)
#define MEMO 1
#define MEMO_BLOCKS 48 /* the most 16-byte blocks a memo digests (768 bytes) */
#define MEMO_LEARNS 8  /* a stream whose shape changed this often stops learning */
static uint64_t MEMO_KEY[2 * MEMO_BLOCKS];
static int memo_keyed; /* 0: os.urandom gave no key, nothing is learned */

static inline uint64_t
load64(const char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* `sum` plus the NH terms of d[0, len), with the key words from `key` on. A length of 16 or
 * more is read in 16-byte blocks, the last one overlapping the one before it; a shorter one is
 * one zero-padded block. For one length the blocks are a one-to-one encoding of the bytes,
 * which is all NH's bound needs. */
static inline unsigned __int128
nh_blocks(const char *d, Py_ssize_t len, const uint64_t *key, unsigned __int128 sum)
{
    if (len < 16) {
        char pad[16] = {0};
        memcpy(pad, d, (size_t)len);
        return sum + (unsigned __int128)(load64(pad) + key[0]) * (load64(pad + 8) + key[1]);
    }
    const char *last = d + len - 16;
    for (; d < last; d += 16, key += 2) {
        sum += (unsigned __int128)(load64(d) + key[0]) * (load64(d + 8) + key[1]);
    }
    return sum + (unsigned __int128)(load64(last) + key[0]) * (load64(last + 8) + key[1]);
}

/* The blocks a (head, tail) pair takes; over MEMO_BLOCKS: no memo for that shape. */
static inline Py_ssize_t
memo_blocks(Py_ssize_t head, Py_ssize_t tail)
{
    return (head + 15) / 16 + (tail + 15) / 16;
}

/* The digest of d[0, head) and d[n - tail, n). */
static void
memo_digest(const char *d, Py_ssize_t n, Py_ssize_t head, Py_ssize_t tail, uint64_t out[2])
{
    unsigned __int128 sum = nh_blocks(d, head, MEMO_KEY, 0);
    sum = nh_blocks(d + n - tail, tail, MEMO_KEY + 2 * ((head + 15) / 16), sum);
    out[0] = (uint64_t)sum;
    out[1] = (uint64_t)(sum >> 64);
}

/* The bytes a content string must not hold for the memo's answer to stand: a quote (it ends
 * the string, or as \" it could open a key), LF and CR (the event's lines), '[' ("[DONE]"). */
static unsigned char MEMO_STOP[256];
static uint32_t key_name_lengths; /* bit L: some key's name (without its quotes) has L bytes */
static unsigned char key_name_first[256]; /* 1: some key's name starts with this byte */

/* 1 when v[0, len) cannot change what classify answers: not empty, none of MEMO_STOP but a
 * '[' that starts no "[DONE]", and not one of the keys' names (as the whole string it would,
 * with the quotes around it, be that key). Backslashes are kept: without a quote no escape
 * reaches a key, and the classifiers never read the string's bytes otherwise. */
static int
memo_value_plain(const char *v, Py_ssize_t len)
{
    if (len <= 0) {
        return 0; /* "content":"" is no content */
    }
    const char *end = v + len;
    for (const char *p = v; p < end; p++) {
        if (MEMO_STOP[(unsigned char)*p]) {
            if (*p != '[' || (end - p >= 6 && memcmp(p, "[DONE]", 6) == 0)) {
                return 0;
            }
        }
    }
    if (len < 32 && (key_name_lengths >> len) & 1u && key_name_first[(unsigned char)v[0]]) {
        for (int k = 0; k < K_COUNT; k++) {
            if (KEYS[k].len - 2 == len && KEYS[k].text[1] == v[0] &&
                memcmp(KEYS[k].text + 1, v, (size_t)len) == 0) {
                return 0;
            }
        }
    }
    return 1;
}

/* classify's answer from the memo: CONTENT when the chunk has the memo's shape, else 0. */
static inline long
memo_probe(ScanBase *scan, const char *d, Py_ssize_t n)
{
    Py_ssize_t head = scan->memo_off, tail = scan->memo_tail;
    if (tail == 0 || n <= head + tail || d[n - tail] != '"' || d[head - 1] != '"' ||
        !memo_value_plain(d + head, n - tail - head)) {
        return 0;
    }
    uint64_t digest[2];
    memo_digest(d, n, head, tail, digest);
    return digest[0] == scan->memo_digest[0] && digest[1] == scan->memo_digest[1] ? CONTENT : 0;
}

/* After classify answered CONTENT for an SSE chunk: remember its shape when it has a plain
 * "content" string (the first "content" key with a string value) in a data line, "data:"
 * before it, and the scanner's sets are frozensets (a set could change under the memo). */
static void
memo_learn(ScanBase *scan, const char *d, Py_ssize_t n)
{
    if (!memo_keyed || scan->memo_learns >= MEMO_LEARNS ||
        !PyFrozenSet_CheckExact(scan->metadata) ||
        !(is_none(scan->critical_names) || PyFrozenSet_CheckExact(scan->critical_names)) ||
        !(is_none(scan->content_names) || PyFrozenSet_CheckExact(scan->content_names))) {
        return;
    }
    const char *end = d + n, *key = find_key(d, d, end, K_CONTENT), *q;
    for (;; key = find_key(d, key + 1, end, K_CONTENT)) {
        if (key == NULL) {
            return;
        }
        for (q = key + KEYS[K_CONTENT].len; q < end && is_space(*q); q++) {
        }
        if (q < end && *q == ':') {
            for (q++; q < end && is_space(*q); q++) {
            }
            if (q < end && *q == '"') {
                break;
            }
        }
    }
    const char *value = q + 1, *close = memchr(value, '"', (size_t)(end - value));
    if (close == NULL || !memo_value_plain(value, close - value)) {
        return;
    }
    Py_ssize_t head = value - d, tail = end - close;
    if (memo_blocks(head, tail) > MEMO_BLOCKS || find(d, head, "data:", 5) == NULL) {
        return;
    }
    const char *line = value; /* the string's line must not be an event line: its name */
    while (line > d && line[-1] != '\n') {
        line--;
    }
    if (memcmp(line, "event:", 6) == 0) {
        return;
    }
    uint64_t digest[2];
    memo_digest(d, n, head, tail, digest);
    if (scan->memo_tail != 0 && (scan->memo_off != head || scan->memo_tail != tail ||
                                 scan->memo_digest[0] != digest[0] ||
                                 scan->memo_digest[1] != digest[1])) {
        scan->memo_learns += 1;
        if (scan->memo_learns >= MEMO_LEARNS) {
            scan->memo_tail = 0; /* the shape keeps changing: no more probes either */
            return;
        }
    }
    scan->memo_off = (uint16_t)head;
    scan->memo_tail = (uint16_t)tail;
    scan->memo_digest[0] = digest[0];
    scan->memo_digest[1] = digest[1];
}

/* The memo's key, random per process (os.urandom). */
static int
memo_init(void)
{
    MEMO_STOP['"'] = MEMO_STOP['\n'] = MEMO_STOP['\r'] = MEMO_STOP['['] = 1;
    for (int k = 0; k < K_COUNT; k++) {
        key_name_lengths |= 1u << (KEYS[k].len - 2); /* every key is shorter than 34 */
        key_name_first[(unsigned char)KEYS[k].text[1]] = 1;
    }
    PyObject *os = PyImport_ImportModule("os");
    if (os == NULL) {
        return -1;
    }
    PyObject *key = PyObject_CallMethod(os, "urandom", "n", (Py_ssize_t)sizeof(MEMO_KEY));
    Py_DECREF(os);
    if (key == NULL || !PyBytes_Check(key) ||
        PyBytes_GET_SIZE(key) != (Py_ssize_t)sizeof(MEMO_KEY)) {
        /* no randomness (an OSError): the kernel still works, without the memo */
        Py_XDECREF(key);
        PyErr_Clear();
        memo_keyed = 0;
        return 0;
    }
    memcpy(MEMO_KEY, PyBytes_AS_STRING(key), sizeof(MEMO_KEY));
    Py_DECREF(key);
    memo_keyed = 1;
    return 0;
}
#else
static int
memo_init(void)
{
    return 0;
}
#endif

/* ScanBase.classify: GENERAL, CONTENT or OTHER, -1 on an error. `body` is non-empty bytes.
 * With critical events asked (coalescing), most keys are asked of every chunk: one walk finds
 * them all (scan_keys); without, an SSE chunk needs two or three, looked for one at a time. */
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
    int sse = scan->fmt == FORMAT_SSE;
#ifdef MEMO
    if (sse && scan->memo_tail != 0 && memo_probe(scan, d, n)) {
        return CONTENT;
    }
#endif
    int critical_asked = !is_none(scan->critical_names);
    PyObject *content = is_none(scan->content_names) ? NULL : scan->content_names;
    Keys keys;
    const char *lf, *cr;
    if (critical_asked) {
        if (scan_keys(d, n, scan->critical_names, content != NULL && sse, &keys) < 0) {
            return -1;
        }
        lf = keys.first_lf < 0 ? NULL : d + keys.first_lf;
        cr = keys.any_cr ? d : NULL; /* only whether there is one is asked */
    }
    else {
        lf = memchr(d, '\n', (size_t)n);
        cr = sse ? memchr(d, '\r', (size_t)n) : NULL; /* NDJSON: asked below when needed */
    }
    if (sse) {
        /* One event: its only blank line ends the chunk; a CR may end lines early. */
        if (n < 3 || lf == NULL || d[n - 1] != '\n' || d[n - 2] != '\n' || cr != NULL ||
            (lf != d + n - 2 &&
             (critical_asked ? keys.first_pair != n - 2
                             : find(lf, d + n - lf, "\n\n", 2) != d + n - 2))) {
            return GENERAL;
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
    if (!sse) {
        return CONTENT;
    }
    int chat = 0;
    int tokens = is_sse_content(d, n, scan->metadata, content, scan->openai_chat,
                                critical_asked ? &keys : NULL, &first, &chat);
    if (tokens < 0) {
        return -1;
    }
#ifdef MEMO
    if (chat) {
        memo_learn(scan, d, n);
    }
#endif
    return tokens ? CONTENT : OTHER;
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

/* The fields the memo's answer depends on (fmt, the three sets, openai_chat): setting one
 * forgets the memo. `pending` and `fast` are read before the memo is, and are set per chunk. */
static PyObject *s_memo_fields[5];

static int
ScanBase_setattro(PyObject *self, PyObject *name, PyObject *value)
{
    int result = PyObject_GenericSetAttr(self, name, value);
#ifdef MEMO
    ScanBase *scan = (ScanBase *)self;
    if (scan->memo_tail != 0) {
        /* an interned name (every attribute name in code) is one of them only as that object */
        int interned = PyUnicode_CheckExact(name) && PyUnicode_CHECK_INTERNED(name);
        for (int i = 0; i < 5; i++) {
            if (name == s_memo_fields[i] ||
                (!interned && PyUnicode_Check(name) &&
                 PyUnicode_Compare(name, s_memo_fields[i]) == 0)) {
                scan->memo_tail = 0;
                break;
            }
        }
    }
#endif
    return result;
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

/* ScanBase._memo: (where the memo's content string starts, the bytes after it), None when
 * there is none; for the tests, which check that their streams reach the memo. */
static PyObject *
ScanBase_memo(ScanBase *self, void *closure)
{
#ifdef MEMO
    if (self->memo_tail != 0) {
        return Py_BuildValue("(nn)", (Py_ssize_t)self->memo_off, (Py_ssize_t)self->memo_tail);
    }
#endif
    Py_RETURN_NONE;
}

static PyGetSetDef ScanBase_getset[] = {
    {"_memo", (getter)ScanBase_memo, NULL, "The memo's (offset, tail), None: none.", NULL},
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
        intern(&s_general, "general") < 0 || intern(&s_time, "time") < 0 ||
        intern(&s_memo_fields[0], "fmt") < 0 || intern(&s_memo_fields[1], "metadata") < 0 ||
        intern(&s_memo_fields[2], "critical_names") < 0 ||
        intern(&s_memo_fields[3], "content_names") < 0 ||
        intern(&s_memo_fields[4], "openai_chat") < 0 || memo_init() < 0) {
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
    ScanBase_Type.tp_setattro = ScanBase_setattro;
    ScanBase_Type.tp_getset = ScanBase_getset;
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
