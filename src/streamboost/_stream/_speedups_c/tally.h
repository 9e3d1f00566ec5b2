/* tally_end: the Prometheus fast backend's end of one response (FastSeries.end in
 * _export/prometheus/_fast_backend.py), in C. A part of _speedups.c, included after record.h.
 *
 * FastSeries.end is a dozen counter and histogram updates on plain Python objects with
 * __slots__, run once per response; in Python it is the largest part of the Prometheus
 * observer's work (~12k instructions at one chunk, ~25k with gaps). Here it reads and writes
 * the same slots through their offsets, resolved once by tally_layout() from the classes'
 * member descriptors, so the Python objects, the collector that exports them and the Python
 * twin stay as they are. tally_end refuses (TypeError) any object whose type is not the one
 * laid out; _fast_backend then keeps the Python method.
 */

/* The slots read, per class, in this order. */
static const char *const SERIES_SLOTS[] = {"requests", "duration", "per_route", NULL};
static const char *const ROUTE_SLOTS[] = {"bytes", "stream", "ttfb", NULL};
static const char *const STATS_SLOTS[] = {"active",          "events", "gaps", "max_gap",
                                          "outcomes",        "stream_duration",
                                          "tpot",            "ttft",   "writes", NULL};
static const char *const HIST_SLOTS[] = {"bounds", "counts", "sum", NULL};
static const char *const RECORD_SLOTS[] = {"request_at", "streaming", "headers_at", "outcome",
                                           NULL};
enum { SE_REQUESTS, SE_DURATION, SE_PER_ROUTE };
enum { RO_BYTES, RO_STREAM, RO_TTFB };
enum { ST_ACTIVE, ST_EVENTS, ST_GAPS, ST_MAX_GAP, ST_OUTCOMES, ST_DURATION, ST_TPOT, ST_TTFT,
       ST_WRITES };
enum { HI_BOUNDS, HI_COUNTS, HI_SUM };
enum { RE_REQUEST_AT, RE_STREAMING, RE_HEADERS_AT, RE_OUTCOME };

static Layout L_series, L_route, L_stats, L_hist, L_record;
static PyObject *s_streams;

/* h.sum += value (a float, as in Python when the sum or the value is one). */
static int
sum_add(PyObject *h, double value)
{
    PyObject *old = slot_get(h, &L_hist, HI_SUM);
    double sum;
    if (old == NULL || as_double(old, &sum) < 0) {
        return -1;
    }
    PyObject *total = PyFloat_FromDouble(sum + value);
    if (total == NULL) {
        return -1;
    }
    slot_set(h, &L_hist, HI_SUM, total);
    return 0;
}

/* Hist.observe(value, trace_id): bisect_left on the bounds, the bucket +1, the sum; the
 * exemplar through the Hist's own method. */
static int
hist_observe(PyObject *h, double value, PyObject *trace_id)
{
    if (!is_laid_out(h, &L_hist)) {
        return -1;
    }
    PyObject *bounds = slot_get(h, &L_hist, HI_BOUNDS);
    PyObject *counts = bounds == NULL ? NULL : slot_get(h, &L_hist, HI_COUNTS);
    if (counts == NULL) {
        return -1;
    }
    if (!PyTuple_CheckExact(bounds)) {
        PyErr_SetString(PyExc_TypeError, "streamboost: a histogram's bounds are not a tuple");
        return -1;
    }
    Py_ssize_t lo = 0, hi = PyTuple_GET_SIZE(bounds);
    while (lo < hi) { /* bisect_left: the first bound not below the value */
        Py_ssize_t mid = (lo + hi) / 2;
        double bound;
        if (as_double(PyTuple_GET_ITEM(bounds, mid), &bound) < 0) {
            return -1;
        }
        if (bound < value) {
            lo = mid + 1;
        }
        else {
            hi = mid;
        }
    }
    if (item_add(counts, lo, 1) < 0 || sum_add(h, value) < 0) {
        return -1;
    }
    if (trace_id != Py_None) {
        PyObject *r = PyObject_CallMethod(h, "exemplar", "ndO", lo, value, trace_id);
        if (r == NULL) {
            return -1;
        }
        Py_DECREF(r);
    }
    return 0;
}

/* value = at - start, observed in histogram slot `i` of `obj`. */
static int
observe_since(PyObject *obj, const Layout *layout, int i, PyObject *at, double start,
              PyObject *trace_id, double *value)
{
    double t;
    PyObject *h = slot_get(obj, layout, i);
    if (h == NULL || as_double(at, &t) < 0) {
        return -1;
    }
    *value = t - start;
    return hist_observe(h, *value, trace_id);
}

static int
tally_stream(PyObject *s, RecordBase *rec, PyObject *record, double duration, double start,
             PyObject *trace_id)
{
    PyObject *headers_at = slot_get(record, &L_record, RE_HEADERS_AT);
    PyObject *outcome = headers_at == NULL ? NULL : slot_get(record, &L_record, RE_OUTCOME);
    PyObject *outcomes = outcome == NULL ? NULL : slot_get(s, &L_stats, ST_OUTCOMES);
    PyObject *h = outcomes == NULL ? NULL : slot_get(s, &L_stats, ST_DURATION);
    if (h == NULL || (headers_at != Py_None && slot_add(s, &L_stats, ST_ACTIVE, -1) < 0) ||
        hist_observe(h, duration, trace_id) < 0) {
        return -1;
    }
    if (!PyDict_CheckExact(outcomes)) {
        PyErr_SetString(PyExc_TypeError, "streamboost: the outcomes are not a dict");
        return -1;
    }
    PyObject *count = PyDict_GetItemWithError(outcomes, outcome); /* borrowed */
    if (count == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_SetObject(PyExc_KeyError, outcome);
        }
        return -1;
    }
    PyObject *one = PyLong_FromLong(1);
    PyObject *more = one == NULL ? NULL : PyNumber_Add(count, one);
    Py_XDECREF(one);
    if (more == NULL || PyDict_SetItem(outcomes, outcome, more) < 0) {
        Py_XDECREF(more);
        return -1;
    }
    Py_DECREF(more);
    if (slot_add(s, &L_stats, ST_EVENTS, rec->events) < 0 ||
        slot_add(s, &L_stats, ST_WRITES, rec->writes) < 0) {
        return -1;
    }
    if (rec->content_events > 1) {
        PyObject *gaps = slot_get(s, &L_stats, ST_GAPS);
        PyObject *max_gap = gaps == NULL ? NULL : slot_get(s, &L_stats, ST_MAX_GAP);
        if (max_gap == NULL || !is_laid_out(gaps, &L_hist)) {
            return -1;
        }
        PyObject *counts = slot_get(gaps, &L_hist, HI_COUNTS);
        if (counts == NULL) {
            return -1;
        }
        for (Py_ssize_t i = 0; i <= GAP_N; i++) {
            if (rec->gap_counts[i] && item_add(counts, i, rec->gap_counts[i]) < 0) {
                return -1;
            }
        }
        if (sum_add(gaps, rec->gap_sum) < 0 || hist_observe(max_gap, rec->gap_max, Py_None) < 0) {
            return -1;
        }
    }
    PyObject *at = rec->first_token_at;
    double ttft;
    if (is_none(at) || observe_since(s, &L_stats, ST_TTFT, at, start, trace_id, &ttft) < 0) {
        return is_none(at) ? 0 : -1;
    }
    PyObject *last = rec->last_token_at;
    if (rec->content_events > 1 && !is_none(last)) { /* record.time_per_output_token() */
        double first, end;
        PyObject *tpot = slot_get(s, &L_stats, ST_TPOT);
        if (tpot == NULL || as_double(at, &first) < 0 || as_double(last, &end) < 0) {
            return -1;
        }
        return hist_observe(tpot, (end - first) / (double)(rec->content_events - 1), Py_None);
    }
    return 0;
}

/* tally_layout(FastSeries, RouteStats, StreamStats, Hist, StreamRecord) */
static PyObject *
tally_layout(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "tally_layout() takes 5 classes");
        return NULL;
    }
    if (!PyType_Check(args[4]) || !PyType_IsSubtype((PyTypeObject *)args[4], &RecordBase_Type)) {
        PyErr_SetString(PyExc_TypeError, "tally_layout(): the record class is no RecordBase");
        return NULL;
    }
    if (layout_of(args[0], SERIES_SLOTS, &L_series) < 0 ||
        layout_of(args[1], ROUTE_SLOTS, &L_route) < 0 ||
        layout_of(args[2], STATS_SLOTS, &L_stats) < 0 ||
        layout_of(args[3], HIST_SLOTS, &L_hist) < 0 ||
        layout_of(args[4], RECORD_SLOTS, &L_record) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* tally_end(series, record, duration, trace_id): FastSeries.end(record, duration, trace_id). */
static PyObject *
tally_end(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "tally_end() takes series, record, duration, trace_id");
        return NULL;
    }
    PyObject *series = args[0], *record = args[1], *trace_id = args[3];
    double duration, start, ttfb;
    if (!is_laid_out(series, &L_series) || !is_laid_out(record, &L_record) ||
        as_double(args[2], &duration) < 0) {
        return NULL;
    }
    RecordBase *rec = (RecordBase *)record;
    PyObject *h = slot_get(series, &L_series, SE_DURATION);
    PyObject *r = h == NULL ? NULL : slot_get(series, &L_series, SE_PER_ROUTE);
    PyObject *request_at = r == NULL ? NULL : slot_get(record, &L_record, RE_REQUEST_AT);
    if (request_at == NULL || !is_laid_out(r, &L_route) ||
        slot_add(series, &L_series, SE_REQUESTS, 1) < 0 || hist_observe(h, duration, trace_id) < 0 ||
        as_double(request_at, &start) < 0) {
        return NULL;
    }
    if (!is_none(rec->first_byte_at) &&
        observe_since(r, &L_route, RO_TTFB, rec->first_byte_at, start, Py_None, &ttfb) < 0) {
        return NULL;
    }
    PyObject *streaming = slot_add(r, &L_route, RO_BYTES, rec->bytes_out) < 0
                              ? NULL
                              : slot_get(record, &L_record, RE_STREAMING);
    int is_stream = streaming == NULL ? -1 : PyObject_IsTrue(streaming);
    if (is_stream <= 0) {
        return is_stream < 0 ? NULL : Py_NewRef(Py_None);
    }
    PyObject *s = slot_get(r, &L_route, RO_STREAM);
    if (s == NULL) {
        return NULL;
    }
    Py_INCREF(s);
    if (s == Py_None) { /* the route's first stream ended before any started: make them */
        Py_SETREF(s, PyObject_CallMethodNoArgs(r, s_streams));
    }
    int failed = s == NULL || !is_laid_out(s, &L_stats) ||
                 tally_stream(s, rec, record, duration, start, trace_id) < 0;
    Py_XDECREF(s);
    return failed ? NULL : Py_NewRef(Py_None);
}

static PyMethodDef tally_functions[] = {
    {"tally_layout", (PyCFunction)(void (*)(void))tally_layout, METH_FASTCALL,
     "Resolve the slots tally_end() reads: FastSeries, RouteStats, StreamStats, Hist, StreamRecord."},
    {"tally_end", (PyCFunction)(void (*)(void))tally_end, METH_FASTCALL,
     "FastSeries.end(record, duration, trace_id) as tally_end(series, record, duration, trace_id)."},
    {NULL},
};
