/* streamboost._speedups: the per-chunk send path in C (optional; _state_py.py is the same in Python).
 *
 * Four base types hold the fields that a body chunk touches: RecordBase (StreamRecord's counters),
 * ScannerBase (EventScanner's learned shape), FlusherBase (BatchFlusher's buffer) and StreamBase
 * (RequestLifecycle's links, and ``send``). The Python classes subclass them and use the fields as
 * ordinary attributes, so every rule stays written once, in Python. ``StreamBase.send`` handles
 * the two chunks that make up nearly every token stream entirely here:
 *
 * - coalescing: a whole, non-critical content event of the learned shape that joins a batch
 *   already waiting (``EventScanner.known_event``, then ``Coalescer.offer``'s first branch);
 * - no coalescer: one content event of the learned shape (``EventScanner.known_content``),
 *   counted as ``HTTPStream._send_slow`` counts it and handed to the server's send.
 *
 * Anything else, or anything this code is not sure of, goes to ``self._send_slow(message)`` with
 * nothing changed, so the Python path decides it as it would without this module.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <string.h>

static PyObject *s_type;      /* "type" */
static PyObject *s_body_type; /* "http.response.body" */
static PyObject *s_more_body; /* "more_body" */
static PyObject *s_body;      /* "body" */
static PyObject *s_send_slow; /* "_send_slow" */
static PyObject *s_wakeup;    /* "_wakeup" */
static PyObject *s_settle;    /* "settle" */
static PyObject *i_full;      /* Coalescer's FULL code: 2 */

/* -- RecordBase ------------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    Py_ssize_t chunks_in;
    Py_ssize_t events;
    Py_ssize_t content_events;
    Py_ssize_t writes;
    Py_ssize_t bytes_out;
    PyObject *last_body_at;  /* float or None */
    PyObject *last_token_at; /* float or None */
} RecordBase;

static int
record_traverse(RecordBase *self, visitproc visit, void *arg)
{
    Py_VISIT(self->last_body_at);
    Py_VISIT(self->last_token_at);
    return 0;
}

static int
record_clear(RecordBase *self)
{
    Py_CLEAR(self->last_body_at);
    Py_CLEAR(self->last_token_at);
    return 0;
}

static void
record_dealloc(RecordBase *self)
{
    PyObject_GC_UnTrack(self);
    record_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef record_members[] = {
    {"chunks_in", T_PYSSIZET, offsetof(RecordBase, chunks_in), 0, NULL},
    {"events", T_PYSSIZET, offsetof(RecordBase, events), 0, NULL},
    {"content_events", T_PYSSIZET, offsetof(RecordBase, content_events), 0, NULL},
    {"writes", T_PYSSIZET, offsetof(RecordBase, writes), 0, NULL},
    {"bytes_out", T_PYSSIZET, offsetof(RecordBase, bytes_out), 0, NULL},
    {"last_body_at", T_OBJECT, offsetof(RecordBase, last_body_at), 0, NULL},
    {"last_token_at", T_OBJECT, offsetof(RecordBase, last_token_at), 0, NULL},
    {NULL},
};

static PyTypeObject RecordBase_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "streamboost._speedups.RecordBase",
    .tp_basicsize = sizeof(RecordBase),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "StreamRecord's per-chunk fields.",
    .tp_traverse = (traverseproc)record_traverse,
    .tp_clear = (inquiry)record_clear,
    .tp_dealloc = (destructor)record_dealloc,
    .tp_members = record_members,
    .tp_new = PyType_GenericNew,
};

/* -- ScannerBase ----------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *prefix; /* bytes */
    PyObject *suffix; /* bytes */
    Py_ssize_t prefix_len;
    Py_ssize_t pending;
} ScannerBase;

static int
scanner_traverse(ScannerBase *self, visitproc visit, void *arg)
{
    Py_VISIT(self->prefix);
    Py_VISIT(self->suffix);
    return 0;
}

static int
scanner_clear(ScannerBase *self)
{
    Py_CLEAR(self->prefix);
    Py_CLEAR(self->suffix);
    return 0;
}

static void
scanner_dealloc(ScannerBase *self)
{
    PyObject_GC_UnTrack(self);
    scanner_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef scanner_members[] = {
    {"prefix", T_OBJECT_EX, offsetof(ScannerBase, prefix), 0, NULL},
    {"suffix", T_OBJECT_EX, offsetof(ScannerBase, suffix), 0, NULL},
    {"prefix_len", T_PYSSIZET, offsetof(ScannerBase, prefix_len), 0, NULL},
    {"pending", T_PYSSIZET, offsetof(ScannerBase, pending), 0, NULL},
    {NULL},
};

static PyTypeObject ScannerBase_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "streamboost._speedups.ScannerBase",
    .tp_basicsize = sizeof(ScannerBase),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "EventScanner's learned shape.",
    .tp_traverse = (traverseproc)scanner_traverse,
    .tp_clear = (inquiry)scanner_clear,
    .tp_dealloc = (destructor)scanner_dealloc,
    .tp_members = scanner_members,
    .tp_new = PyType_GenericNew,
};

/* -- FlusherBase ----------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *ready;   /* list of bytes: whole events, oldest first */
    PyObject *pending; /* list of bytes: an unfinished event */
    PyObject *error;   /* exception or None */
    Py_ssize_t ready_bytes;
    Py_ssize_t ready_events;
    Py_ssize_t ready_content;
    Py_ssize_t inflight;
    Py_ssize_t max_events;
    Py_ssize_t max_bytes;
    Py_ssize_t max_buffer;
    char wanted;
} FlusherBase;

static int
flusher_traverse(FlusherBase *self, visitproc visit, void *arg)
{
    Py_VISIT(self->ready);
    Py_VISIT(self->pending);
    Py_VISIT(self->error);
    return 0;
}

static int
flusher_clear(FlusherBase *self)
{
    Py_CLEAR(self->ready);
    Py_CLEAR(self->pending);
    Py_CLEAR(self->error);
    return 0;
}

static void
flusher_dealloc(FlusherBase *self)
{
    PyObject_GC_UnTrack(self);
    flusher_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef flusher_members[] = {
    {"_ready", T_OBJECT_EX, offsetof(FlusherBase, ready), 0, NULL},
    {"_pending", T_OBJECT_EX, offsetof(FlusherBase, pending), 0, NULL},
    {"error", T_OBJECT, offsetof(FlusherBase, error), 0, NULL},
    {"_ready_bytes", T_PYSSIZET, offsetof(FlusherBase, ready_bytes), 0, NULL},
    {"_ready_events", T_PYSSIZET, offsetof(FlusherBase, ready_events), 0, NULL},
    {"_ready_content", T_PYSSIZET, offsetof(FlusherBase, ready_content), 0, NULL},
    {"_inflight", T_PYSSIZET, offsetof(FlusherBase, inflight), 0, NULL},
    {"_max_events", T_PYSSIZET, offsetof(FlusherBase, max_events), 0, NULL},
    {"_max_bytes", T_PYSSIZET, offsetof(FlusherBase, max_bytes), 0, NULL},
    {"_max_buffer", T_PYSSIZET, offsetof(FlusherBase, max_buffer), 0, NULL},
    {"_wanted", T_BOOL, offsetof(FlusherBase, wanted), 0, NULL},
    {NULL},
};

static PyTypeObject FlusherBase_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "streamboost._speedups.FlusherBase",
    .tp_basicsize = sizeof(FlusherBase),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "BatchFlusher's buffer.",
    .tp_traverse = (traverseproc)flusher_traverse,
    .tp_clear = (inquiry)flusher_clear,
    .tp_dealloc = (destructor)flusher_dealloc,
    .tp_members = flusher_members,
    .tp_new = PyType_GenericNew,
};

/* -- StreamBase ------------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    PyObject *record;    /* a RecordBase */
    PyObject *scanner;   /* a ScannerBase or None */
    PyObject *coalescer; /* a FlusherBase or None */
    PyObject *done;      /* an already-done future, or None */
    PyObject *send;      /* the server's send */
    PyObject *clock;     /* () -> float */
    char direct;
} StreamBase;

static int
stream_traverse(StreamBase *self, visitproc visit, void *arg)
{
    Py_VISIT(self->record);
    Py_VISIT(self->scanner);
    Py_VISIT(self->coalescer);
    Py_VISIT(self->done);
    Py_VISIT(self->send);
    Py_VISIT(self->clock);
    return 0;
}

static int
stream_clear(StreamBase *self)
{
    Py_CLEAR(self->record);
    Py_CLEAR(self->scanner);
    Py_CLEAR(self->coalescer);
    Py_CLEAR(self->done);
    Py_CLEAR(self->send);
    Py_CLEAR(self->clock);
    return 0;
}

static void
stream_dealloc(StreamBase *self)
{
    PyObject_GC_UnTrack(self);
    stream_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The chunk's body when ``message`` is a body message with more to come and a non-empty bytes
 * body (borrowed from the message), else NULL. Never raises. */
static PyObject *
more_body_chunk(PyObject *message)
{
    if (!PyDict_CheckExact(message)) {
        return NULL;
    }
    PyObject *type = PyDict_GetItemWithError(message, s_type);
    if (type == NULL) {
        PyErr_Clear();
        return NULL;
    }
    if (type != s_body_type) {
        if (!PyUnicode_CheckExact(type) || PyUnicode_Compare(type, s_body_type) != 0) {
            return NULL;
        }
    }
    PyObject *more = PyDict_GetItemWithError(message, s_more_body);
    if (more != Py_True) {
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

/* The coalescing path: 1 and the awaitable in *result when the chunk was taken, 0 when the
 * Python path must decide, -1 on an error. */
static int
buffer_known_event(StreamBase *self, PyObject *body, PyObject **result)
{
    FlusherBase *co = (FlusherBase *)self->coalescer;
    if (co->error != NULL && co->error != Py_None) {
        return 0;
    }
    if (self->scanner == NULL || !PyObject_TypeCheck(self->scanner, &ScannerBase_Type) ||
        self->record == NULL || !PyObject_TypeCheck(self->record, &RecordBase_Type) ||
        self->done == NULL || self->done == Py_None) {
        return 0;
    }
    ScannerBase *sc = (ScannerBase *)self->scanner;
    if (sc->pending != 0 || sc->prefix == NULL || sc->suffix == NULL ||
        !PyBytes_CheckExact(sc->prefix) || !PyBytes_CheckExact(sc->suffix)) {
        return 0;
    }
    Py_ssize_t plen = PyBytes_GET_SIZE(sc->prefix);
    Py_ssize_t slen = PyBytes_GET_SIZE(sc->suffix);
    Py_ssize_t size = PyBytes_GET_SIZE(body);
    if (plen == 0 || slen == 0 || plen != sc->prefix_len || size <= plen + slen) {
        return 0;
    }
    const char *data = PyBytes_AS_STRING(body);
    Py_ssize_t middle = size - plen - slen; /* the content string: at least one byte */
    if (memcmp(data, PyBytes_AS_STRING(sc->prefix), plen) != 0 ||
        memcmp(data + size - slen, PyBytes_AS_STRING(sc->suffix), slen) != 0 ||
        memchr(data + plen, '"', middle) != NULL || memchr(data + plen, '\n', middle) != NULL ||
        memchr(data + plen, '\r', middle) != NULL) {
        return 0;
    }
    if (co->ready == NULL || co->pending == NULL || !PyList_CheckExact(co->ready) ||
        !PyList_CheckExact(co->pending) || PyList_GET_SIZE(co->ready) == 0 ||
        PyList_GET_SIZE(co->pending) != 0) {
        return 0; /* no batch waiting, or an unfinished event: Coalescer._offer's rules */
    }
    if (PyList_Append(co->ready, body) < 0) {
        return -1;
    }
    RecordBase *rec = (RecordBase *)self->record;
    rec->chunks_in += 1;
    rec->events += 1;
    co->ready_bytes += size;
    co->ready_events += 1;
    co->ready_content += 1;
    PyObject *owner = (PyObject *)co;
    Py_INCREF(owner); /* _wakeup and settle run Python code */
    int code = 0;
    if ((co->ready_events >= co->max_events || co->ready_bytes >= co->max_bytes) && !co->wanted) {
        PyObject *woken = PyObject_CallMethodNoArgs(owner, s_wakeup);
        if (woken == NULL) {
            Py_DECREF(owner);
            return -1;
        }
        Py_DECREF(woken);
    }
    if (co->ready_bytes + co->inflight < co->max_buffer) {
        if (self->done == NULL) {
            PyErr_SetString(PyExc_RuntimeError, "streamboost: the stream lost its done future");
            code = -1;
        }
        else {
            *result = Py_NewRef(self->done);
            code = 1;
        }
    }
    else {
        *result = PyObject_CallMethodOneArg(owner, s_settle, i_full);
        code = *result == NULL ? -1 : 1;
    }
    Py_DECREF(owner);
    return code;
}

/* The path without a coalescer: 1 and the server's awaitable in *result when the chunk was
 * taken, 0 when the Python path must decide, -1 on an error. */
static int
send_known_content(StreamBase *self, PyObject *message, PyObject *body, PyObject **result)
{
    if (self->scanner == NULL || !PyObject_TypeCheck(self->scanner, &ScannerBase_Type) ||
        self->record == NULL || !PyObject_TypeCheck(self->record, &RecordBase_Type) ||
        self->send == NULL || self->clock == NULL) {
        return 0;
    }
    ScannerBase *sc = (ScannerBase *)self->scanner;
    Py_ssize_t p = sc->prefix_len;
    if (sc->pending != 0 || p == 0 || sc->prefix == NULL || !PyBytes_CheckExact(sc->prefix) ||
        PyBytes_GET_SIZE(sc->prefix) != p) {
        return 0;
    }
    Py_ssize_t size = PyBytes_GET_SIZE(body);
    const char *data = PyBytes_AS_STRING(body);
    /* One line ending in a blank line, whose content string is not empty: the prefix, then
     * the first line feed after it is the event's last but one byte, the last is a line feed,
     * and the byte after the prefix is not the string's closing quote. */
    if (size < p + 2 || memcmp(data, PyBytes_AS_STRING(sc->prefix), p) != 0 ||
        data[size - 1] != '\n' || data[p] == '"' ||
        memchr(data + p, '\n', size - p) != (const void *)(data + size - 2) ||
        memchr(data + p, '\r', size - p) != NULL) { /* a CR ends a line too: Python decides */
        return 0;
    }
    PyObject *now = PyObject_CallNoArgs(self->clock);
    if (now == NULL) {
        return -1;
    }
    RecordBase *rec = (RecordBase *)self->record;
    rec->chunks_in += 1;
    rec->writes += 1;
    rec->bytes_out += size;
    rec->events += 1;
    rec->content_events += 1;
    Py_INCREF(now);
    Py_XSETREF(rec->last_body_at, now);
    Py_XSETREF(rec->last_token_at, now); /* the reference taken by the call */
    *result = PyObject_CallOneArg(self->send, message);
    return *result == NULL ? -1 : 1;
}

static PyObject *
stream_send(StreamBase *self, PyObject *message)
{
    PyObject *body = more_body_chunk(message);
    if (body != NULL) {
        PyObject *result = NULL;
        int taken = 0;
        Py_INCREF(message); /* keeps the borrowed body alive while Python code runs */
        if (self->coalescer != NULL && self->coalescer != Py_None) {
            if (PyObject_TypeCheck(self->coalescer, &FlusherBase_Type)) {
                taken = buffer_known_event(self, body, &result);
            }
        }
        else if (self->direct) {
            taken = send_known_content(self, message, body, &result);
        }
        Py_DECREF(message);
        if (taken != 0) {
            return taken > 0 ? result : NULL;
        }
    }
    return PyObject_CallMethodOneArg((PyObject *)self, s_send_slow, message);
}

static PyMethodDef stream_methods[] = {
    {"send", (PyCFunction)stream_send, METH_O,
     "The app's send: a body chunk of the usual kinds is handled here, the rest by _send_slow."},
    {NULL},
};

static PyMemberDef stream_members[] = {
    {"record", T_OBJECT_EX, offsetof(StreamBase, record), 0, NULL},
    {"_scanner", T_OBJECT, offsetof(StreamBase, scanner), 0, NULL},
    {"_coalescer", T_OBJECT, offsetof(StreamBase, coalescer), 0, NULL},
    {"_done", T_OBJECT_EX, offsetof(StreamBase, done), 0, NULL},
    {"_send", T_OBJECT_EX, offsetof(StreamBase, send), 0, NULL},
    {"_clock", T_OBJECT_EX, offsetof(StreamBase, clock), 0, NULL},
    {"_direct", T_BOOL, offsetof(StreamBase, direct), 0, NULL},
    {NULL},
};

static PyTypeObject StreamBase_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "streamboost._speedups.StreamBase",
    .tp_basicsize = sizeof(StreamBase),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "RequestLifecycle's links to its record, scanner and coalescer, and send.",
    .tp_traverse = (traverseproc)stream_traverse,
    .tp_clear = (inquiry)stream_clear,
    .tp_dealloc = (destructor)stream_dealloc,
    .tp_members = stream_members,
    .tp_methods = stream_methods,
    .tp_new = PyType_GenericNew,
};

/* -- module ---------------------------------------------------------------------------------- */

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "streamboost._speedups",
    .m_doc = "The per-chunk send path of StreamBoost in C (optional).",
    .m_size = -1,
};

static int
intern(PyObject **slot, const char *text)
{
    *slot = PyUnicode_InternFromString(text);
    return *slot == NULL ? -1 : 0;
}

PyMODINIT_FUNC
PyInit__speedups(void)
{
    if (intern(&s_type, "type") < 0 || intern(&s_body_type, "http.response.body") < 0 ||
        intern(&s_more_body, "more_body") < 0 || intern(&s_body, "body") < 0 ||
        intern(&s_send_slow, "_send_slow") < 0 || intern(&s_wakeup, "_wakeup") < 0 ||
        intern(&s_settle, "settle") < 0) {
        return NULL;
    }
    i_full = PyLong_FromLong(2);
    if (i_full == NULL) {
        return NULL;
    }
    PyTypeObject *types[] = {&RecordBase_Type, &ScannerBase_Type, &FlusherBase_Type,
                             &StreamBase_Type};
    const char *names[] = {"RecordBase", "ScannerBase", "FlusherBase", "StreamBase"};
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
        Py_INCREF(types[i]);
        if (PyModule_AddObject(module, names[i], (PyObject *)types[i]) < 0) {
            Py_DECREF(types[i]);
            Py_DECREF(module);
            return NULL;
        }
    }
    return module;
}
