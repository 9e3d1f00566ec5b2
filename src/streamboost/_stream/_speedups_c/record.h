/* RecordBase: StreamRecord's per-chunk fields and the changes a body chunk makes to them (took,
 * produced, wrote, sent) and its gap bucket counts. A part of _speedups.c, not a header of its
 * own: one translation unit, so the per-chunk calls inline across the parts.
 */

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
