/* The app's body message, read once per chunk. A part of _speedups.c, included before sender.h.
 *
 * Three dict lookups by key cost more than the rest of a direct chunk's bookkeeping (about 120
 * instructions each in CPython 3.11), so the common message, Starlette's and sse-starlette's
 * `{"type": ..., "body": ..., "more_body": ...}` literal, is read by walking its three entries
 * once (on CPython 3.11 straight from the dict's entry table, checked at import). Its keys are
 * code constants, interned like ours, so they match by identity; any other dict (other keys,
 * more keys, equal but distinct key strings) takes the lookups.
 */

/* The last "http.response.body" string seen that is not our interned one: an app's code
 * constant, the same object on every chunk it sends. A strong reference, so its address cannot
 * be taken by another string; one for the process, no memory per stream. */
static PyObject *body_type_seen;

CHUNK_INLINE int
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

/* The three entries of a dict of three, in order, into kv (key, value, key, value, ...;
 * borrowed); 0 when they cannot be read so. */
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
/* CPython 3.11's dict keys (Include/internal/pycore_dict.h, unchanged through 3.11.x), read,
 * never written: PyDict_Next costs ~50 instructions an entry, this ~5. Used only after
 * entries_init() read a dict of its own this way and found what PyDict_Next finds. */
typedef struct {
    Py_ssize_t dk_refcnt;
    uint8_t dk_log2_size;
    uint8_t dk_log2_index_bytes;
    uint8_t dk_kind; /* DICT_KEYS_UNICODE (1): entries of a key and a value */
    uint32_t dk_version;
    Py_ssize_t dk_usable;
    Py_ssize_t dk_nentries;
    char dk_indices[];
} Keys311;
static int entries_direct;

static int
entries3(PyObject *dict, PyObject **kv)
{
    PyDictObject *mp = (PyDictObject *)dict;
    if (entries_direct && mp->ma_values == NULL) {
        Keys311 *keys = (Keys311 *)mp->ma_keys;
        if (keys->dk_kind == 1 && keys->dk_nentries == 3) {
            PyObject **e = (PyObject **)(keys->dk_indices + ((size_t)1 << keys->dk_log2_index_bytes));
            kv[0] = e[0], kv[1] = e[1], kv[2] = e[2], kv[3] = e[3], kv[4] = e[4], kv[5] = e[5];
            return kv[1] != NULL && kv[3] != NULL && kv[5] != NULL; /* NULL: a deleted entry */
        }
    }
    Py_ssize_t pos = 0;
    return PyDict_Next(dict, &pos, &kv[0], &kv[1]) && PyDict_Next(dict, &pos, &kv[2], &kv[3]) &&
           PyDict_Next(dict, &pos, &kv[4], &kv[5]);
}

/* Turns the direct read on when it reads a fresh {"type", "body", "more_body"} dict as
 * PyDict_Next does. */
static int
entries_init(void)
{
    PyObject *d = PyDict_New(), *kv[6] = {NULL}, *want[6] = {NULL};
    PyObject *names[3] = {s_type, s_body, s_more_body};
    if (d == NULL) {
        return -1;
    }
    for (int i = 0; i < 3; i++) {
        if (PyDict_SetItem(d, names[i], names[(i + 1) % 3]) < 0) {
            Py_DECREF(d);
            return -1;
        }
    }
    Py_ssize_t pos = 0;
    for (int i = 0; i < 3; i++) {
        PyDict_Next(d, &pos, &want[2 * i], &want[2 * i + 1]);
    }
    entries_direct = 1;
    int same = entries3(d, kv) && memcmp(kv, want, sizeof(kv)) == 0;
    entries_direct = same;
    Py_DECREF(d);
    return 0;
}
#else
static const int entries_direct = 0;

static int
entries3(PyObject *dict, PyObject **kv)
{
    Py_ssize_t pos = 0;
    return PyDict_Next(dict, &pos, &kv[0], &kv[1]) && PyDict_Next(dict, &pos, &kv[2], &kv[3]) &&
           PyDict_Next(dict, &pos, &kv[4], &kv[5]);
}

static int
entries_init(void)
{
    return 0;
}
#endif

/* The message's type, body and more_body values (borrowed; NULL where absent). */
CHUNK_INLINE void
message_fields(PyObject *message, PyObject **type, PyObject **body, PyObject **more)
{
    *type = *body = *more = NULL;
    PyObject *kv[6];
    if (PyDict_GET_SIZE(message) == 3 && entries3(message, kv)) {
        int known = 1;
        for (int i = 0; known && i < 6; i += 2) {
            if (kv[i] == s_type) {
                *type = kv[i + 1];
            }
            else if (kv[i] == s_body) {
                *body = kv[i + 1];
            }
            else if (kv[i] == s_more_body) {
                *more = kv[i + 1];
            }
            else {
                known = 0;
            }
        }
        if (known && *type != NULL && *body != NULL && *more != NULL) {
            return;
        }
        *type = *body = *more = NULL;
    }
    *type = PyDict_GetItemWithError(message, s_type);
    if (*type != NULL) {
        *body = PyDict_GetItemWithError(message, s_body);
        *more = PyDict_GetItemWithError(message, s_more_body);
    }
    PyErr_Clear();
}

/* What a body message is to the direct and batch senders. */
enum { BODY_OTHER, BODY_MORE, BODY_LAST_EMPTY };

/* BODY_MORE: a body message with more to come and non-empty bytes (`*body` borrowed from the
 * message); BODY_LAST_EMPTY: the body's last message, with no bytes (`more_body` absent or
 * False, `body` absent or b""); else BODY_OTHER. Never raises. */
CHUNK_INLINE int
body_message(PyObject *message, PyObject **body)
{
    if (!PyDict_CheckExact(message)) {
        return BODY_OTHER;
    }
    PyObject *type, *more;
    message_fields(message, &type, body, &more);
    if (more == Py_True) {
        if (*body == NULL || !PyBytes_CheckExact(*body) || PyBytes_GET_SIZE(*body) == 0 ||
            !is_body_type(type)) {
            return BODY_OTHER;
        }
        return BODY_MORE;
    }
    if ((more == NULL || more == Py_False) &&
        (*body == NULL || (PyBytes_CheckExact(*body) && PyBytes_GET_SIZE(*body) == 0)) &&
        is_body_type(type)) {
        return BODY_LAST_EMPTY;
    }
    return BODY_OTHER;
}

/* The body of a body message with more to come, when it is non-empty bytes (borrowed from the
 * message), else NULL. Never raises. */
static PyObject *
more_body_chunk(PyObject *message)
{
    PyObject *body;
    return body_message(message, &body) == BODY_MORE ? body : NULL;
}
