/* The app's body message, read once per chunk. A part of _speedups.c, included before sender.h.
 *
 * Three dict lookups by key cost more than the rest of a direct chunk's bookkeeping (about 120
 * instructions each in CPython 3.11), so the common message, Starlette's and sse-starlette's
 * `{"type": ..., "body": ..., "more_body": ...}` literal, is read by walking its three entries
 * once. Its keys are code constants, interned like ours, so they match by identity; any other
 * dict (other keys, more keys, equal but distinct key strings) takes the lookups.
 */

/* The last "http.response.body" string seen that is not our interned one: an app's code
 * constant, the same object on every chunk it sends. A strong reference, so its address cannot
 * be taken by another string; one for the process, no memory per stream. */
static PyObject *body_type_seen;

static int
is_body_type(PyObject *type)
{
    if (type == s_body_type || (type == body_type_seen && type != NULL)) {
        return 1;
    }
    if (type == NULL || !PyUnicode_CheckExact(type) || PyUnicode_Compare(type, s_body_type) != 0) {
        PyErr_Clear();
        return 0;
    }
    Py_XSETREF(body_type_seen, Py_NewRef(type));
    return 1;
}

/* The message's type, body and more_body values (borrowed; NULL where absent). */
static void
message_fields(PyObject *message, PyObject **type, PyObject **body, PyObject **more)
{
    *type = *body = *more = NULL;
    if (PyDict_GET_SIZE(message) == 3) {
        Py_ssize_t pos = 0;
        PyObject *key, *value;
        int known = 1;
        /* Three entries: no fourth call to find the end. */
        for (int i = 0; known && i < 3 && PyDict_Next(message, &pos, &key, &value); i++) {
            if (key == s_type) {
                *type = value;
            }
            else if (key == s_body) {
                *body = value;
            }
            else if (key == s_more_body) {
                *more = value;
            }
            else {
                known = 0;
            }
        }
        if (known && *type != NULL && *body != NULL && *more != NULL) {
            return;
        }
    }
    *type = PyDict_GetItemWithError(message, s_type);
    *body = *type == NULL ? NULL : PyDict_GetItemWithError(message, s_body);
    *more = *body == NULL ? NULL : PyDict_GetItemWithError(message, s_more_body);
    PyErr_Clear();
}

/* The body of a body message with more to come, when it is non-empty bytes (borrowed from the
 * message), else NULL. Never raises. */
static PyObject *
more_body_chunk(PyObject *message)
{
    if (!PyDict_CheckExact(message)) {
        return NULL;
    }
    PyObject *type, *body, *more;
    message_fields(message, &type, &body, &more);
    if (more != Py_True || body == NULL || !PyBytes_CheckExact(body) ||
        PyBytes_GET_SIZE(body) == 0 || !is_body_type(type)) {
        return NULL;
    }
    return body;
}
