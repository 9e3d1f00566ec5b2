/* The compiled name sets (a byte range in a frozenset of bytes, without a bytes object) and the
 * SSE event-name readers over them. A part of _speedups.c, included in order: one translation
 * unit, so the lookups inline into the classifiers.
 */

/* -- name sets: is a byte range in a frozenset of bytes, without making a bytes object ------ */

/* The classifiers ask whether an event name or a "type" value is in one of the scanner's sets
 * (the preset's names: the same few frozensets for every response). A bytes object, its hash
 * and PySet_Contains cost some 400 instructions a lookup; a compiled index of the set's names
 * by length answers with a memcmp or two. The compiled sets live in one small table shared by
 * every stream (no memory per stream), each holding a reference to its frozenset: immutable,
 * so the index stays true, and its elements keep the bytes the index points into alive. */
#define NAME_SETS 8
#define NAME_LONG 64 /* names of this length or longer share the last length group */

typedef struct {
    PyObject *set;       /* the frozenset (a strong reference); NULL: a free slot */
    PyObject *items;     /* a list of its elements, in the order of `text` */
    const char **text;   /* each name's bytes, grouped by length */
    Py_ssize_t *len;
    Py_ssize_t group[NAME_LONG + 2]; /* the names of length group g: [group[g], group[g + 1]) */
    char exact;          /* 0: an element is not exact bytes: ask PySet_Contains */
} NameSet;

static NameSet NAME_SET[NAME_SETS];
static int name_set_next; /* the slot the next compiled set replaces (round robin) */

static void
name_set_free(NameSet *ns)
{
    PyMem_Free((void *)ns->text);
    PyMem_Free(ns->len);
    ns->text = NULL;
    ns->len = NULL;
    Py_CLEAR(ns->items);
    Py_CLEAR(ns->set);
}

/* The compiled form of `set`, NULL when it has none (not a frozenset, or out of memory:
 * the caller then asks PySet_Contains, which raises what there is to raise). */
static NameSet *
name_set(PyObject *set)
{
    /* a set's own slot first (where it is put when that slot is free), then any */
    int own = (int)(((uintptr_t)set >> 4) % NAME_SETS);
    if (NAME_SET[own].set == set) {
        return &NAME_SET[own];
    }
    for (int i = 0; i < NAME_SETS; i++) {
        if (NAME_SET[i].set == set) {
            return &NAME_SET[i];
        }
    }
    if (!PyFrozenSet_CheckExact(set)) {
        return NULL;
    }
    PyObject *items = PySequence_List(set);
    if (items == NULL) {
        PyErr_Clear();
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(items);
    const char **text = PyMem_Malloc(sizeof(*text) * (size_t)(n + 1));
    Py_ssize_t *len = PyMem_Malloc(sizeof(*len) * (size_t)(n + 1));
    PyObject *sorted = PyList_New(n);
    if (text == NULL || len == NULL || sorted == NULL) {
        PyMem_Free((void *)text);
        PyMem_Free(len);
        Py_XDECREF(sorted);
        Py_DECREF(items);
        PyErr_Clear();
        return NULL;
    }
    NameSet *ns = &NAME_SET[own];
    if (ns->set != NULL) {
        ns = &NAME_SET[name_set_next];
        name_set_next = (name_set_next + 1) % NAME_SETS;
    }
    name_set_free(ns);
    memset(ns->group, 0, sizeof(ns->group));
    ns->exact = 1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyList_GET_ITEM(items, i);
        if (!PyBytes_CheckExact(item)) {
            ns->exact = 0; /* a str or a bytes subclass: equality is theirs to say */
            break;
        }
        Py_ssize_t size = PyBytes_GET_SIZE(item);
        ns->group[(size < NAME_LONG ? size : NAME_LONG) + 1] += 1;
    }
    for (int g = 1; g < NAME_LONG + 2; g++) {
        ns->group[g] += ns->group[g - 1];
    }
    Py_ssize_t fill[NAME_LONG + 1];
    memcpy(fill, ns->group, sizeof(fill));
    for (Py_ssize_t i = 0; ns->exact && i < n; i++) {
        PyObject *item = PyList_GET_ITEM(items, i);
        Py_ssize_t size = PyBytes_GET_SIZE(item);
        Py_ssize_t at = fill[size < NAME_LONG ? size : NAME_LONG]++;
        text[at] = PyBytes_AS_STRING(item);
        len[at] = size;
        PyList_SET_ITEM(sorted, at, Py_NewRef(item));
    }
    Py_DECREF(items);
    if (!ns->exact) {
        /* unfilled slots of `sorted` are NULL, which list_dealloc skips */
        Py_DECREF(sorted);
        sorted = NULL;
    }
    ns->set = Py_NewRef(set);
    ns->items = sorted;
    ns->text = text;
    ns->len = len;
    return ns;
}

/* 1 when bytes(start[:size]) is in `names` (a set of bytes), 0 when not, -1 on an error. */
static int
name_in(PyObject *names, const char *start, Py_ssize_t size)
{
    NameSet *ns = name_set(names);
    if (ns != NULL && ns->exact) {
        int g = size < NAME_LONG ? (int)size : NAME_LONG;
        for (Py_ssize_t i = ns->group[g]; i < ns->group[g + 1]; i++) {
            if (ns->len[i] == size && memcmp(ns->text[i], start, (size_t)size) == 0) {
                return 1;
            }
        }
        return 0;
    }
    PyObject *value = PyBytes_FromStringAndSize(start, size);
    if (value == NULL) {
        return -1;
    }
    int found = PySet_Contains(names, value);
    Py_DECREF(value);
    return found;
}

/* 1 when bytes(data[start:end]).strip() is in `names`, 0 when not, -1 on an error. */
static int
stripped_in(const char *start, const char *end, PyObject *names)
{
    while (start < end && is_space(*start)) {
        start++;
    }
    while (end > start && is_space(end[-1])) {
        end--;
    }
    return name_in(names, start, end - start);
}

/* -- event names ------------------------------------------------------------------------------ */

/* _classify._EVENT_NAME from `p` on: "event:" at the start of `d` or after a CR or LF, one
 * optional space, the name to the line's end. 1 and the name in [*name, *stop), 0 when none.
 * Only line starts can match, so without a CR in the body (`any_cr`) the walk goes from one
 * LF to the next (a chunk has few lines) instead of stopping at every 'e' of the JSON. */
static int
next_event_name(const char *d, const char *p, const char *end, int any_cr, const char **name,
                const char **stop)
{
    while (p < end) {
        const char *at;
        if (any_cr) {
            at = find(p, end - p, "event:", 6);
            if (at == NULL) {
                return 0;
            }
        }
        else {
            at = p;
        }
        if (end - at >= 6 && memcmp(at, "event:", 6) == 0 &&
            (at == d || at[-1] == '\n' || at[-1] == '\r')) {
            const char *s = at + 6, *e;
            if (s < end && *s == ' ') {
                s++;
            }
            e = memchr(s, '\n', (size_t)(end - s));
            if (e == NULL) {
                e = end;
            }
            if (any_cr) {
                const char *cr = memchr(s, '\r', (size_t)(e - s));
                if (cr != NULL) {
                    e = cr;
                }
            }
            *name = s;
            *stop = e;
            return 1;
        }
        if (any_cr) {
            p = at + 1;
        }
        else {
            const char *lf = memchr(at, '\n', (size_t)(end - at));
            if (lf == NULL) {
                return 0;
            }
            p = lf + 1;
        }
    }
    return 0;
}

/* The first event name of a body (_EVENT_NAME.search), found once for both classifiers. */
typedef struct {
    const char *name, *stop; /* the name's bytes, unstripped; name NULL: the body has none */
    int any_cr;
} FirstName;

/* 1 when some (stripped) event name is in `names`, 0 when none is, -1 on an error. */
static int
event_name_in(const char *d, Py_ssize_t n, PyObject *names, const FirstName *first)
{
    const char *end = d + n, *name = first->name, *stop = first->stop;
    if (name == NULL) {
        return 0;
    }
    do {
        int found = stripped_in(name, stop, names);
        if (found != 0) {
            return found;
        }
    } while (next_event_name(d, stop, end, first->any_cr, &name, &stop));
    return 0;
}
