/* Slots of Python objects read and written from C through their offsets. A part of
 * _speedups.c, included before tally.h (its one user).
 *
 * A class with __slots__ keeps each slot at a fixed offset in its objects, which the slot's
 * member descriptor holds; a Layout is those offsets for one class, resolved once by name.
 * Every access first checks that the object's type is exactly the laid-out one.
 */

#define TALLY_MAX_SLOTS 9
typedef struct {
    PyTypeObject *type; /* a strong reference once laid out */
    Py_ssize_t offset[TALLY_MAX_SLOTS];
} Layout;

/* The slot `obj.<slot i>` (borrowed; NULL with AttributeError when unset). */
static PyObject *
slot_get(PyObject *obj, const Layout *layout, int i)
{
    PyObject *value = *(PyObject **)((char *)obj + layout->offset[i]);
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "streamboost: a tallied slot is unset");
    }
    return value;
}

static void
slot_set(PyObject *obj, const Layout *layout, int i, PyObject *value) /* steals value */
{
    Py_XSETREF(*(PyObject **)((char *)obj + layout->offset[i]), value);
}

/* Lays out `type` by its slots `names` into `layout`, all or nothing. */
static int
layout_of(PyObject *type, const char *const *names, Layout *layout)
{
    if (!PyType_Check(type)) {
        PyErr_Format(PyExc_TypeError, "tally_layout() wants classes, got %R", type);
        return -1;
    }
    Layout found = {NULL, {0}};
    for (int i = 0; names[i] != NULL; i++) {
        PyObject *descr = PyObject_GetAttrString(type, names[i]);
        if (descr == NULL) {
            return -1;
        }
        int ok = Py_IS_TYPE(descr, &PyMemberDescr_Type) &&
                 ((PyMemberDescrObject *)descr)->d_member->type == T_OBJECT_EX;
        if (ok) {
            found.offset[i] = ((PyMemberDescrObject *)descr)->d_member->offset;
        }
        Py_DECREF(descr);
        if (!ok) {
            PyErr_Format(PyExc_TypeError, "%R.%s is not a __slots__ slot", type, names[i]);
            return -1;
        }
    }
    found.type = (PyTypeObject *)Py_NewRef(type);
    Py_XDECREF(layout->type);
    *layout = found;
    return 0;
}

static int
is_laid_out(PyObject *obj, const Layout *layout)
{
    if (layout->type != NULL && Py_IS_TYPE(obj, layout->type)) {
        return 1;
    }
    PyErr_Format(PyExc_TypeError, "tally_end(): %R is not of the laid-out class", obj);
    return 0;
}

/* obj.<slot i> += n, for an int slot. */
static int
slot_add(PyObject *obj, const Layout *layout, int i, Py_ssize_t n)
{
    PyObject *old = slot_get(obj, layout, i);
    if (old == NULL) {
        return -1;
    }
    PyObject *delta = PyLong_FromSsize_t(n);
    PyObject *value = delta == NULL ? NULL : PyNumber_Add(old, delta);
    Py_XDECREF(delta);
    if (value == NULL) {
        return -1;
    }
    slot_set(obj, layout, i, value);
    return 0;
}

/* list[i] += n */
static int
item_add(PyObject *list, Py_ssize_t i, Py_ssize_t n)
{
    if (!PyList_CheckExact(list) || i < 0 || i >= PyList_GET_SIZE(list)) {
        PyErr_SetString(PyExc_IndexError, "streamboost: a histogram's counts are too short");
        return -1;
    }
    PyObject *delta = PyLong_FromSsize_t(n);
    PyObject *value = delta == NULL ? NULL : PyNumber_Add(PyList_GET_ITEM(list, i), delta);
    Py_XDECREF(delta);
    if (value == NULL) {
        return -1;
    }
    Py_SETREF(PyList_GET_ITEM(list, i), value);
    return 0;
}

static int
as_double(PyObject *value, double *out)
{
    *out = PyFloat_CheckExact(value) ? PyFloat_AS_DOUBLE(value) : PyFloat_AsDouble(value);
    return *out == -1.0 && PyErr_Occurred() ? -1 : 0;
}

