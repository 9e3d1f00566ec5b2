/* The batch mode's send (a coalesced stream): whole events joining a waiting batch, the
 * write-at-once rule's events, and chunks that are not whole events (a relay's read: the end
 * of an event cut by the chunk before, events, the start of the next), which Coalescer.offer
 * would take. A part of _speedups.c, included right after sender.h, whose helpers it uses.
 */

/* The unfinished event's pieces, as the batch holds them: a list, or NULL for none (None, an
 * empty list); -1 where it is something else. */
static int
batch_partial(BatchBase *b, PyObject **pieces)
{
    PyObject *partial = b->partial;
    *pieces = NULL;
    if (partial == NULL || is_none(partial)) {
        return 0;
    }
    if (!PyList_CheckExact(partial)) {
        return -1;
    }
    *pieces = PyList_GET_SIZE(partial) ? partial : NULL;
    return 0;
}

/* Coalescer.offer's rules for what scan_peek found, past its write-at-once case (that one,
 * and anything the scanner is not sure of, the general send takes: nothing is changed
 * before). The scanner and the batch take the chunk as feed and offer would, then the app's
 * send returns as settle() would return. */
static PyObject *
batch_split(Sender *self, BatchBase *b, PyObject *body, PyObject *message)
{
    ScanBase *scan = (ScanBase *)self->scan;
    PyObject *pieces;
    if (batch_partial(b, &pieces) < 0 || (b->pending_bytes != 0) != (scan->pending != 0)) {
        return batch_general(self, message);
    }
    Py_INCREF(message); /* keeps the borrowed body alive while Python code runs */
    PyObject *owner = Py_NewRef(self->batch), *result = NULL;
    Py_ssize_t end, n = PyBytes_GET_SIZE(body);
    long kind = scan_peek(scan, body, &end);
    double now;
    PyObject *t = kind >= 0 ? batch_time(b, &now) : NULL;
    if (t == NULL) {
        if (kind == -2) {
            result = batch_general(self, message);
        }
        goto done;
    }
    Py_DECREF(t);
    /* from the last chunk that ended an event; one short gap is jitter, two in a row a burst */
    int short_gap = now - b->last_event < b->quiet_gap;
    int empty = b->ready == NULL || is_none(b->ready) ||
                (PyList_CheckExact(b->ready) && PyList_GET_SIZE(b->ready) == 0);
    if (end > 0 && empty && b->inflight == 0 &&
        (b->eager || !(short_gap && b->near) || now - b->last_write >= b->window ||
         loop_late(b))) {
        result = batch_general(self, message); /* written at once: the Coalescer's own path */
        goto done;
    }
    PyObject *sent = PyObject_CallNoArgs(self->clock); /* the app's time: gaps, stalls */
    double at = sent != NULL ? PyFloat_AsDouble(sent) : -1.0;
    Py_XDECREF(sent);
    if (sent == NULL || (at == -1.0 && PyErr_Occurred()) ||
        scan_commit(scan, body, end, kind) < 0) {
        goto done;
    }
    long events = kind >> EVENTS_SHIFT, content = kind & ((1L << EVENTS_SHIFT) - 1), code;
    RecordBase *rec = (RecordBase *)self->record;
    rec->chunks_in += 1;
    rec->events += events;
    record_produced(rec, content, at);
    if (b->due == Py_HUGE_VAL) {
        b->due = now + b->window;
    }
    if (end == 0) { /* the unfinished event goes on: a piece that ends none is no gap seen */
        if (pieces == NULL) {
            PyObject *list = PyList_New(1);
            if (list == NULL) {
                goto done;
            }
            PyList_SET_ITEM(list, 0, Py_NewRef(body));
            Py_XSETREF(b->partial, list);
        }
        else if (PyList_Append(pieces, body) < 0) {
            goto done;
        }
        b->pending_bytes += n;
        code = b->ready_bytes + b->pending_bytes + b->inflight >= b->max_buffer ? FULL : 0;
    }
    else {
        b->last_event = now; /* a gap is between events: from the last chunk that ended one */
        b->near = (char)(short_gap || b->eager);
        Py_ssize_t size = b->pending_bytes + end;
        PyObject *head = end == n ? Py_NewRef(body)
                                  : PyBytes_FromStringAndSize(PyBytes_AS_STRING(body), end);
        /* the scanner's new unfinished piece (scan_commit made it): the same bytes, shared */
        PyObject *rest = end == n ? Py_NewRef(Py_None) : PyList_New(1);
        if (rest != NULL && end < n) {
            PyList_SET_ITEM(rest, 0, Py_NewRef(PyList_GET_ITEM(scan->partial, 0)));
        }
        if (head == NULL || rest == NULL) {
            Py_XDECREF(head);
            Py_XDECREF(rest);
            goto done;
        }
        PyObject *before = b->partial; /* its pieces join the batch ahead of the head */
        b->partial = rest;
        b->pending_bytes = n - end;
        code = 0;
        if (pieces != NULL) {
            if (b->ready == NULL || is_none(b->ready)) {
                PyObject *ready = PyList_New(0);
                code = ready == NULL ? -1 : 0;
                if (ready != NULL) {
                    Py_XSETREF(b->ready, ready);
                }
            }
            if (code == 0) {
                Py_ssize_t size_now = PyList_GET_SIZE(b->ready);
                code = PyList_SetSlice(b->ready, size_now, size_now, pieces);
            }
        }
        Py_XDECREF(before);
        if (code == 0) {
            code = batch_add(b, head, size, events, content, 0);
        }
        Py_DECREF(head);
        if (code >= 0 && empty && !(code & WAKE)) {
            PyObject *stamp = PyFloat_FromDouble(now);
            PyObject *armed = stamp != NULL ? PyObject_CallMethodOneArg(owner, s_arm_timer, stamp)
                                            : NULL;
            Py_XDECREF(stamp);
            code = armed == NULL ? -1 : code;
            Py_XDECREF(armed);
        }
    }
    if (code >= 0 && (code & WAKE)) {
        PyObject *woken = PyObject_CallMethodNoArgs(owner, s_wake);
        code = woken == NULL ? -1 : code;
        Py_XDECREF(woken);
    }
    if (code >= 0) {
        result = code & FULL ? PyObject_CallMethodNoArgs(owner, s_room) : Py_NewRef(self->done);
    }
done:
    Py_DECREF(owner);
    Py_DECREF(message);
    return result;
}

/* No batch waiting: the Coalescer's write-at-once rule (eager until the first token, the
 * events at least `quiet_gap` after the last chunk that ended one, or after a chunk that was
 * (`near`: one short gap is jitter), a window since the last write, or a loop whose timers
 * fire more than a quarter window late) for whole events, taken here: the app's own message
 * goes to the server, as in direct mode, so a sparse stream costs no Python per event.
 * Anything else: the general send. */
static PyObject *
batch_now(Sender *self, BatchBase *b, PyObject *body, PyObject *message)
{
    Py_INCREF(message); /* keeps the borrowed body alive while Python code runs */
    PyObject *result = NULL;
    long kind = classify((ScanBase *)self->scan, body);
    if (kind == 0) {
        result = batch_split(self, b, body, message); /* an event cut at the chunk's end */
        Py_DECREF(message);
        return result;
    }
    if (kind < 0) {
        Py_DECREF(message);
        return NULL;
    }
    PyObject *owner = Py_NewRef(self->batch);
    double now;
    PyObject *t = batch_time(b, &now);
    if (t == NULL) {
        goto done;
    }
    Py_DECREF(t);
    int short_gap = now - b->last_event < b->quiet_gap; /* one is jitter; two in a row: a burst */
    int quiet = !(short_gap && b->near); /* whole events: this chunk ends one, so it counts */
    b->last_event = now;
    b->near = (char)(short_gap || b->eager);
    if (!(b->eager || quiet || now - b->last_write >= b->window || loop_late(b))) {
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
    long content = kind & ((1L << EVENTS_SHIFT) - 1);
    rec->chunks_in += 1;
    rec->events += kind >> EVENTS_SHIFT;
    record_produced(rec, content, at);
    PyObject *stamp = PyObject_CallNoArgs(self->clock);
    if (stamp != NULL) {
        if (content && is_none(rec->first_token_at)) {
            b->eager = 0; /* the first token is out: batching may start */
        }
        b->last_write = now;
        record_wrote(rec, PyBytes_GET_SIZE(body), content, stamp);
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
    if (!is_none(b->error)) {
        return batch_general(self, message);
    }
    if (b->pending_bytes != 0) {
        return batch_split(self, b, body, message); /* an event cut by the chunk before */
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
        result = batch_split(self, b, body, message);
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
        long events = kind >> EVENTS_SHIFT, content = kind & ((1L << EVENTS_SHIFT) - 1);
        rec->chunks_in += 1;
        rec->events += events;
        record_produced(rec, content, at);
        PyObject *owner = Py_NewRef(self->batch); /* wake and room run Python code */
        long code = batch_add(b, body, PyBytes_GET_SIZE(body), events, content, 0);
        if (code == 0 && !b->wanted && since_write(rec, at) >= b->window) {
            code = batch_due(b, owner); /* due already: the timer is late (a loaded loop) */
        }
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
