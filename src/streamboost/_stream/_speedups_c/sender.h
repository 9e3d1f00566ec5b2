/* Sender: the app's send for one response (use(mode), then the kernel's chunks, the rest to
 * general). A part of _speedups.c, included in order: one translation unit, so classify, the
 * record's changes and batch_add inline into the per-chunk send.
 */

/* -- Sender ---------------------------------------------------------------------------------- */

typedef struct Sender Sender;
typedef PyObject *(*chunk_fn)(Sender *, PyObject *);

struct Sender {
    PyObject_HEAD
    /* No wake/room callables: the batch's own wake() and room() methods are called, so a
     * stream holds no bound method objects for them. */
    PyObject *batch, *clock, *done, *general, *owner, *record, *scan, *server_send;
    chunk_fn chunk;
};

static int
Sender_traverse(Sender *self, visitproc visit, void *arg)
{
    Py_VISIT(self->batch);
    Py_VISIT(self->clock);
    Py_VISIT(self->done);
    Py_VISIT(self->general);
    Py_VISIT(self->owner);
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
    Py_CLEAR(self->owner);
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

/* The last scanner and record types found to be ScanBase and RecordBase subtypes (strong
 * references, one each for the process): the subtype check walks the MRO on every chunk. */
static PyObject *scan_type_ok, *record_type_ok;

static int
is_subtype_cached(PyObject *obj, PyTypeObject *base, PyObject **ok)
{
    if (obj == NULL) {
        return 0;
    }
    PyObject *type = (PyObject *)Py_TYPE(obj);
    if (type == *ok || type == (PyObject *)base) {
        return 1;
    }
    if (!PyType_IsSubtype(Py_TYPE(obj), base)) {
        return 0;
    }
    Py_XSETREF(*ok, Py_NewRef(type));
    return 1;
}

static PyObject *lag_type_ok;

/* The loop's timers fire over a quarter window late (the batch's LagBase says so): a batch would
 * wait a whole turn of a lagging loop past its window, so every event goes out at once. */
CHUNK_INLINE int
loop_late(BatchBase *b)
{
    PyObject *lag = b->lag;
    return lag != NULL && is_subtype_cached(lag, &LagBase_Type, &lag_type_ok) &&
           ((LagBase *)lag)->late;
}

static int
fields_ready(Sender *self)
{
    return is_subtype_cached(self->scan, &ScanBase_Type, &scan_type_ok) &&
           is_subtype_cached(self->record, &RecordBase_Type, &record_type_ok);
}

/* The body's last message, empty, in direct mode: counted as the general send counts it (a
 * message of no bytes and no events), the owner told the body is finishing, then the server's
 * send; with the scanner holding an unfinished event, or no owner, the general send. */
static PyObject *
last_direct(Sender *self, PyObject *message)
{
    if (!fields_ready(self) || self->clock == NULL || self->server_send == NULL ||
        is_none(self->owner) || ((ScanBase *)self->scan)->pending) {
        return to_general(self, message);
    }
    Py_INCREF(message);
    PyObject *result = NULL, *now = clock_read(self->clock);
    double at = now != NULL ? PyFloat_AsDouble(now) : -1.0;
    if (now != NULL && !(at == -1.0 && PyErr_Occurred())) {
        RecordBase *rec = (RecordBase *)self->record;
        rec->chunks_in += 1;
        record_produced(rec, 0, at);
        record_wrote(rec, 0, 0, now);
        PyObject *done = PyObject_CallMethodNoArgs(self->owner, s_finishing);
        if (done != NULL) {
            Py_DECREF(done);
            result = PyObject_CallOneArg(self->server_send, message);
        }
    }
    Py_XDECREF(now);
    Py_DECREF(message);
    return result;
}

static PyObject *
chunk_direct(Sender *self, PyObject *message)
{
    PyObject *body;
    int what = body_message(message, &body);
    if (what == BODY_LAST_EMPTY) {
        return last_direct(self, message);
    }
    if (what != BODY_MORE || !fields_ready(self) || self->clock == NULL ||
        self->server_send == NULL) {
        return to_general(self, message);
    }
    Py_INCREF(message); /* keeps the borrowed body alive while Python code runs */
    ScanBase *scan = (ScanBase *)self->scan;
    long kind = classify(scan, body);
    PyObject *result = NULL;
    if (kind == 0) {
        /* not whole events: an event cut by the chunk (a relay's read), fed here if sure */
        Py_ssize_t end = scan_feed(scan, body);
        if (end == -2) {
            result = to_general(self, message);
            Py_DECREF(message);
            return result;
        }
        kind = end < 0 ? -1 : scan->events << EVENTS_SHIFT | scan->content;
    }
    if (kind >= 0) {
        PyObject *now = clock_read(self->clock);
        double at = now != NULL ? PyFloat_AsDouble(now) : -1.0;
        if (now != NULL && !(at == -1.0 && PyErr_Occurred())) {
            RecordBase *rec = (RecordBase *)self->record;
            long content = kind & ((1L << EVENTS_SHIFT) - 1);
            rec->chunks_in += 1;
            rec->events += kind >> EVENTS_SHIFT;
            record_produced(rec, content, at);
            record_wrote(rec, PyBytes_GET_SIZE(body), content, now);
            result = PyObject_CallOneArg(self->server_send, message);
        }
        Py_XDECREF(now);
    }
    Py_DECREF(message);
    return result;
}
