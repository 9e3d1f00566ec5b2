/* The module: its definition and PyInit__speedups (constants read from _table, the types made
 * ready, the memo keyed). A part of _speedups.c, the last one included.
 */

/* -- module ---------------------------------------------------------------------------------- */

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "streamboost._stream._speedups",
    .m_doc = "The C twin of streamboost's fast-path kernel (optional).",
    .m_size = -1,
    .m_methods = tally_functions,
};

static int
intern(PyObject **slot, const char *text)
{
    *slot = PyUnicode_InternFromString(text);
    return *slot == NULL ? -1 : 0;
}

static int
constant(PyObject *table, const char *name, long *slot)
{
    PyObject *value = PyObject_GetAttrString(table, name);
    if (value == NULL) {
        return -1;
    }
    *slot = PyLong_AsLong(value);
    Py_DECREF(value);
    return *slot == -1 && PyErr_Occurred() ? -1 : 0;
}

PyMODINIT_FUNC
PyInit__speedups(void)
{
    init_key_first();
    if (intern(&s_type, "type") < 0 || intern(&s_body_type, "http.response.body") < 0 ||
        intern(&s_more_body, "more_body") < 0 || intern(&s_body, "body") < 0 ||
        intern(&s_wake, "wake") < 0 || intern(&s_room, "room") < 0 ||
        intern(&s_general, "general") < 0 || intern(&s_time, "time") < 0 ||
        intern(&s_streams, "streams") < 0 || intern(&s_finishing, "finishing") < 0 ||
        intern(&s_arm_timer, "arm_timer") < 0 ||
        intern(&s_memo_fields[0], "fmt") < 0 || intern(&s_memo_fields[1], "metadata") < 0 ||
        intern(&s_memo_fields[2], "critical_names") < 0 ||
        intern(&s_memo_fields[3], "content_names") < 0 ||
        intern(&s_memo_fields[4], "openai_chat") < 0 || memo_init() < 0 || clock_init() < 0 ||
        entries_init() < 0 || receiving_init() < 0) {
        return NULL;
    }
    PyObject *table = PyImport_ImportModule("streamboost._stream._table");
    if (table == NULL) {
        return NULL;
    }
    struct {
        const char *name;
        long *slot;
    } constants[] = {
        {"GENERAL", &GENERAL},         {"CONTENT", &CONTENT},
        {"OTHER", &OTHER},             {"EVENTS_SHIFT", &EVENTS_SHIFT},
        {"FORMAT_SSE", &FORMAT_SSE},
        {"FORMAT_LINES", &FORMAT_LINES}, {"FORMAT_CHUNKS", &FORMAT_CHUNKS},
        {"WAKE", &WAKE},               {"FULL", &FULL},
        {"MODE_GENERAL", &MODE_GENERAL}, {"MODE_DIRECT", &MODE_DIRECT},
        {"MODE_BATCH", &MODE_BATCH},
    };
    for (size_t i = 0; i < sizeof(constants) / sizeof(constants[0]); i++) {
        if (constant(table, constants[i].name, constants[i].slot) < 0) {
            Py_DECREF(table);
            return NULL;
        }
    }
    PyObject *bounds = PyObject_GetAttrString(table, "GAP_BOUNDS");
    Py_DECREF(table);
    if (bounds == NULL) {
        return NULL;
    }
    PyObject *seq = PySequence_Fast(bounds, "GAP_BOUNDS must be a tuple");
    Py_DECREF(bounds);
    if (seq == NULL) {
        return NULL;
    }
    GAP_N = PySequence_Fast_GET_SIZE(seq);
    if (GAP_N + 1 > GAP_SLOTS) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "_table.GAP_BOUNDS has more bounds than GAP_SLOTS - 1");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < GAP_N; i++) {
        GAP_BOUNDS[i] = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(seq, i));
        if (GAP_BOUNDS[i] == -1.0 && PyErr_Occurred()) {
            Py_DECREF(seq);
            return NULL;
        }
    }
    Py_DECREF(seq);
    RecordBase_Type.tp_getset = RecordBase_getset;
    Sender_Type.tp_init = (initproc)Sender_init;
    ScanBase_Type.tp_setattro = ScanBase_setattro;
    ScanBase_Type.tp_getset = ScanBase_getset;
    PyTypeObject *types[] = {&RecordBase_Type, &ScanBase_Type, &BatchBase_Type, &Sender_Type,
                             &Receiving_Type, &LagBase_Type};
    const char *names[] = {"RecordBase", "ScanBase", "BatchBase", "Sender", "Receiving",
                           "LagBase"};
    const int count = (int)(sizeof(types) / sizeof(types[0]));
    for (int i = 0; i < count; i++) {
        if (PyType_Ready(types[i]) < 0) {
            return NULL;
        }
    }
    PyObject *module = PyModule_Create(&speedups_module);
    if (module == NULL) {
        return NULL;
    }
    for (int i = 0; i < count; i++) {
        if (PyModule_AddObject(module, names[i], Py_NewRef((PyObject *)types[i])) < 0) {
            Py_DECREF(types[i]);
            Py_DECREF(module);
            return NULL;
        }
    }
    /* Whether body messages are read from the dict's entry table (tests check it is on 3.11). */
    if (PyModule_AddIntConstant(module, "ENTRIES_DIRECT", entries_direct) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
