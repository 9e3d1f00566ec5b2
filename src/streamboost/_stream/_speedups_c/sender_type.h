/* The Sender type: send() (the mode's chunk function), use(mode), its members and type
 * object. A part of _speedups.c, included right after sender.h, whose functions it names.
 */

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
    {"owner", T_OBJECT, offsetof(Sender, owner), 0, NULL},
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
