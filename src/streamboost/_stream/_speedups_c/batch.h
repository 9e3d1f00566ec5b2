/* BatchBase: Coalescer's buffer and add() (join whole events, say WAKE or FULL). A part of
 * _speedups.c, included in order: one translation unit, so batch_add inlines into the
 * sender's batch path.
 */

/* -- LagBase --------------------------------------------------------------------------------- */

/* One per event loop and window (_lag.LoopLag, a Python subclass, runs the probe that sets
 * it): `late` while the loop's timers fire over a quarter window late. Its own type,
 * so the per-chunk rule reads one char through the batch's pointer, no attribute lookup. */
typedef struct {
    PyObject_HEAD
    char late;
} LagBase;

static PyMemberDef LagBase_members[] = {
    {"late", T_BOOL, offsetof(LagBase, late), 0, NULL},
    {NULL},
};

static PyTypeObject LagBase_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "streamboost._stream._speedups.LagBase",
    .tp_basicsize = sizeof(LagBase),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "A loop's lag: late while its timers fire a quarter window late.",
    .tp_members = LagBase_members,
    .tp_new = PyType_GenericNew,
};

/* -- BatchBase ------------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *error; /* exception or None */
    PyObject *ready; /* list of bytes, or None: no batch waiting */
    PyObject *loop;  /* the event loop */
    PyObject *loop_clock; /* its time(), as a plain callable: stamps the rules */
    PyObject *lag;        /* the loop's LagBase (shared), or None */
    PyObject *partial;    /* list of the unfinished event's pieces (bytes), or None */
    Py_ssize_t inflight, max_buffer, max_bytes, max_events, pending_bytes;
    Py_ssize_t ready_bytes, ready_content, ready_events;
    double last_event, last_write, quiet_gap, window; /* loop times and seconds */
    double due; /* loop time the waiting batch is due by; +inf: nothing buffered */
    char wanted, eager, write_now, near; /* near: the last decided chunk's gap was short */
} BatchBase;

static int
BatchBase_traverse(BatchBase *self, visitproc visit, void *arg)
{
    Py_VISIT(self->error);
    Py_VISIT(self->ready);
    Py_VISIT(self->loop);
    Py_VISIT(self->loop_clock);
    Py_VISIT(self->lag);
    Py_VISIT(self->partial);
    return 0;
}

static int
BatchBase_clear(BatchBase *self)
{
    Py_CLEAR(self->error);
    Py_CLEAR(self->ready);
    Py_CLEAR(self->loop);
    Py_CLEAR(self->loop_clock);
    Py_CLEAR(self->lag);
    Py_CLEAR(self->partial);
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

/* Seconds of the sender's clock since the record's last write (+inf: none, or not a float). A
 * batch is due a window after its first byte, which came after that write: the sender reads
 * the loop's time only past a window since it, so most chunks of a busy stream skip it. */
static inline double
since_write(RecordBase *rec, double at)
{
    PyObject *last = rec->last_body_at;
    return last != NULL && PyFloat_CheckExact(last) ? at - PyFloat_AS_DOUBLE(last) : Py_HUGE_VAL;
}

/* The loop's time (a new reference; `at` its value), or NULL on an error. */
static PyObject *
batch_time(BatchBase *b, double *at)
{
    if (b->loop_clock == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "streamboost: the batch has no loop clock");
        return NULL;
    }
    PyObject *now = PyObject_CallNoArgs(b->loop_clock);
    *at = now != NULL ? PyFloat_AsDouble(now) : -1.0;
    if (now != NULL && *at == -1.0 && PyErr_Occurred()) {
        Py_CLEAR(now);
    }
    return now;
}

/* When the batch is due already (its timer late: a loaded loop, while the app sends again),
 * owner.wake(True): the flusher starts now, so its first turn takes what this turn adds. 0, or
 * -1 on an error. */
static long
batch_due(BatchBase *b, PyObject *owner)
{
    double at;
    PyObject *now = batch_time(b, &at);
    if (now == NULL) {
        return -1;
    }
    Py_DECREF(now);
    if (at < b->due) {
        return 0;
    }
    PyObject *woken = PyObject_CallMethodOneArg(owner, s_wake, Py_True);
    Py_XDECREF(woken);
    return woken == NULL ? -1 : 0;
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
    {"loop_clock", T_OBJECT, offsetof(BatchBase, loop_clock), 0, NULL},
    {"lag", T_OBJECT, offsetof(BatchBase, lag), 0, NULL},
    {"partial", T_OBJECT, offsetof(BatchBase, partial), 0, NULL},
    {"last_event", T_DOUBLE, offsetof(BatchBase, last_event), 0, NULL},
    {"last_write", T_DOUBLE, offsetof(BatchBase, last_write), 0, NULL},
    {"quiet_gap", T_DOUBLE, offsetof(BatchBase, quiet_gap), 0, NULL},
    {"window", T_DOUBLE, offsetof(BatchBase, window), 0, NULL},
    {"due", T_DOUBLE, offsetof(BatchBase, due), 0, NULL},
    {"eager", T_BOOL, offsetof(BatchBase, eager), 0, NULL},
    {"write_now", T_BOOL, offsetof(BatchBase, write_now), 0, NULL},
    {"near", T_BOOL, offsetof(BatchBase, near), 0, NULL},
    {NULL},
};

static PyMethodDef BatchBase_methods[] = {
    {"add", (PyCFunction)(void (*)(void))BatchBase_add, METH_FASTCALL,
     "add(body, size, events, content, critical): join whole events; WAKE/FULL bits."},
    {NULL},
};

GC_TYPE(BatchBase_Type, BatchBase, "Coalescer's buffer, and add().");
