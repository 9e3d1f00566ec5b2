/* Receiving: one receive() of the app, the server's awaited through an object with no frame.
 * A part of _speedups.c. The twin of _receiving.receiving (a coroutine) in _kernel's sense:
 * the same steps, without the ~200 B coroutine frame a pending receive() would keep per open
 * stream (a streaming app keeps one pending for the whole stream to hear the disconnect).
 *
 * At its first step it calls listener.server_receive() and from then on passes every step of
 * that awaitable through (am_send, so a return is no StopIteration); when the awaitable returns
 * a message whose "type" is "http.disconnect" it calls listener.disconnected() before the app
 * gets the message. A thrown exception goes to the server's awaitable as it would through a
 * coroutine's await.
 */

/* -- Receiving ------------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *listener; /* the HTTPStream: server_receive, disconnected() */
    PyObject *inner;    /* what is awaited of the server's receive(), from the first step */
} Receiving;

static PyObject *s_server_receive, *s_disconnected, *s_disconnect, *s_throw, *s_close;

static int
Receiving_traverse(Receiving *self, visitproc visit, void *arg)
{
    Py_VISIT(self->listener);
    Py_VISIT(self->inner);
    return 0;
}

static int
Receiving_clear(Receiving *self)
{
    Py_CLEAR(self->listener);
    Py_CLEAR(self->inner);
    return 0;
}

DEALLOC(Receiving)

/* The server's receive() called, and what `await` would iterate of its result. */
static int
receiving_start(Receiving *self)
{
    PyObject *receive = PyObject_GetAttr(self->listener, s_server_receive);
    if (receive == NULL) {
        return -1;
    }
    PyObject *awaitable = PyObject_CallNoArgs(receive);
    Py_DECREF(receive);
    if (awaitable == NULL) {
        return -1;
    }
    PyObject *inner = awaitable;
    if (!PyCoro_CheckExact(awaitable) && !PyGen_CheckExact(awaitable)) {
        PyAsyncMethods *am = Py_TYPE(awaitable)->tp_as_async;
        if (am == NULL || am->am_await == NULL) {
            PyErr_Format(PyExc_TypeError, "object %.100s can't be used in 'await' expression",
                         Py_TYPE(awaitable)->tp_name);
            Py_DECREF(awaitable);
            return -1;
        }
        inner = am->am_await(awaitable);
        Py_DECREF(awaitable);
        if (inner == NULL) {
            return -1;
        }
    }
    self->inner = inner;
    return 0;
}

/* The server's awaitable returned `message`: tell the listener of a disconnect. */
static int
receiving_seen(Receiving *self, PyObject *message)
{
    PyObject *type = PyObject_GetItem(message, s_type);
    if (type == NULL) {
        return -1;
    }
    int disconnect = PyObject_RichCompareBool(type, s_disconnect, Py_EQ);
    Py_DECREF(type);
    if (disconnect <= 0) {
        return disconnect;
    }
    PyObject *done = PyObject_CallMethodNoArgs(self->listener, s_disconnected);
    Py_XDECREF(done);
    return done == NULL ? -1 : 0;
}

static PySendResult
Receiving_am_send(Receiving *self, PyObject *arg, PyObject **result)
{
    if (self->inner == NULL && receiving_start(self) < 0) {
        *result = NULL;
        return PYGEN_ERROR;
    }
    PySendResult status = PyIter_Send(self->inner, arg, result);
    if (status == PYGEN_RETURN && receiving_seen(self, *result) < 0) {
        Py_CLEAR(*result);
        return PYGEN_ERROR;
    }
    return status;
}

/* A return as a generator's send() reports it: StopIteration carrying the value. */
static PyObject *
receiving_step(Receiving *self, PyObject *arg)
{
    PyObject *result;
    PySendResult status = Receiving_am_send(self, arg, &result);
    if (status != PYGEN_RETURN) {
        return result; /* the value yielded, or NULL with the error set */
    }
    PyObject *stop = PyObject_CallOneArg(PyExc_StopIteration, result);
    Py_DECREF(result);
    if (stop != NULL) {
        PyErr_SetObject(PyExc_StopIteration, stop);
        Py_DECREF(stop);
    }
    return NULL;
}

static PyObject *
Receiving_iternext(Receiving *self)
{
    return receiving_step(self, Py_None);
}

static PyObject *
Receiving_send(Receiving *self, PyObject *arg)
{
    return receiving_step(self, arg);
}

static PyObject *
Receiving_throw(Receiving *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "throw expected 1 to 3 arguments");
        return NULL;
    }
    /* Not started (a task cancelled at once: no server receive), or a server awaitable
     * without throw() (granian's): raised here, as `yield from` does (PEP 380). */
    PyObject *throw = self->inner == NULL ? NULL : PyObject_GetAttr(self->inner, s_throw);
    if (throw == NULL) {
        if (self->inner != NULL && !PyErr_ExceptionMatches(PyExc_AttributeError)) {
            return NULL;
        }
        PyErr_Clear();
        PyObject *typ = args[0], *val = nargs > 1 ? args[1] : Py_None;
        PyObject *tb = nargs > 2 ? args[2] : Py_None;
        PyObject *exc = val != Py_None ? val : typ;
        if (PyExceptionInstance_Check(exc)) {
            if (tb != Py_None && PyException_SetTraceback(exc, tb) < 0) {
                return NULL;
            }
            PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        }
        else if (PyExceptionClass_Check(exc)) {
            PyErr_SetNone(exc);
        }
        else {
            PyErr_SetString(PyExc_TypeError, "exceptions must derive from BaseException");
        }
        return NULL;
    }
    PyObject *result = PyObject_Vectorcall(throw, args, nargs, NULL);
    Py_DECREF(throw);
    if (result != NULL || !PyErr_ExceptionMatches(PyExc_StopIteration)) {
        return result;
    }
    /* The server's awaitable returned while handling it: look at the message, then let the
     * same StopIteration go on. */
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *stop = PyErr_GetRaisedException();
#else
    PyObject *type, *stop, *traceback;
    PyErr_Fetch(&type, &stop, &traceback);
    PyErr_NormalizeException(&type, &stop, &traceback);
    if (stop != NULL && traceback != NULL) {
        PyException_SetTraceback(stop, traceback);
    }
    Py_XDECREF(type);
    Py_XDECREF(traceback);
#endif
    PyObject *message = stop != NULL ? PyObject_GetAttrString(stop, "value") : NULL;
    int seen = message != NULL ? receiving_seen(self, message) : -1;
    Py_XDECREF(message);
    if (seen < 0) {
        Py_XDECREF(stop);
        return NULL;
    }
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(stop);
#else
    PyErr_SetObject((PyObject *)Py_TYPE(stop), stop);
    Py_DECREF(stop);
#endif
    return NULL;
}

static PyObject *
Receiving_close(Receiving *self, PyObject *unused)
{
    if (self->inner == NULL) {
        Py_RETURN_NONE;
    }
    PyObject *close = PyObject_GetAttr(self->inner, s_close);
    if (close == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
            return NULL;
        }
        PyErr_Clear(); /* an iterator without close(): nothing to close */
        Py_RETURN_NONE;
    }
    PyObject *result = PyObject_CallNoArgs(close);
    Py_DECREF(close);
    return result;
}

static PyObject *
Receiving_await(Receiving *self)
{
    return Py_NewRef(self);
}

static PyObject *
Receiving_vectorcall(PyObject *type, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (PyVectorcall_NARGS(nargsf) != 1 || kwnames != NULL) {
        PyErr_SetString(PyExc_TypeError, "Receiving(listener) takes one argument");
        return NULL;
    }
    Receiving *self = PyObject_GC_New(Receiving, (PyTypeObject *)type);
    if (self == NULL) {
        return NULL;
    }
    self->listener = Py_NewRef(args[0]);
    self->inner = NULL;
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

static PyObject *
Receiving_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *listener;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs)) {
        PyErr_SetString(PyExc_TypeError, "Receiving(listener) takes one argument");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "O:Receiving", &listener)) {
        return NULL;
    }
    return Receiving_vectorcall((PyObject *)type, &listener, 1, NULL);
}

static PyAsyncMethods Receiving_async = {
    .am_await = (unaryfunc)Receiving_await,
    .am_send = (sendfunc)Receiving_am_send,
};

static PyMethodDef Receiving_methods[] = {
    {"send", (PyCFunction)Receiving_send, METH_O, "A step, as a coroutine's send()."},
    {"throw", (PyCFunction)(void (*)(void))Receiving_throw, METH_FASTCALL,
     "Raise in the server's awaitable, as a coroutine's throw()."},
    {"close", (PyCFunction)Receiving_close, METH_NOARGS, "Close the server's awaitable."},
    {NULL},
};

static PyTypeObject Receiving_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "streamboost._stream._speedups.Receiving",
    .tp_basicsize = sizeof(Receiving),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "One receive() of the app: the server's, awaited through (see receive.h).",
    .tp_traverse = (traverseproc)Receiving_traverse,
    .tp_clear = (inquiry)Receiving_clear,
    .tp_dealloc = (destructor)Receiving_dealloc,
    .tp_as_async = &Receiving_async,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)Receiving_iternext,
    .tp_methods = Receiving_methods,
    .tp_new = Receiving_new,
    .tp_vectorcall = Receiving_vectorcall,
};

static int
receiving_init(void)
{
    PyObject **slots[] = {&s_server_receive, &s_disconnected, &s_disconnect, &s_throw, &s_close};
    const char *texts[] = {"server_receive", "disconnected", "http.disconnect", "throw", "close"};
    for (int i = 0; i < 5; i++) {
        *slots[i] = PyUnicode_InternFromString(texts[i]);
        if (*slots[i] == NULL) {
            return -1;
        }
    }
    return 0;
}
