/* ScanBase's type: its setattro (which forgets the memo), members, methods and type object.
 * A part of _speedups.c, included after classify.h and feed.h, whose functions it names.
 */

/* The fields the memo's answer depends on (fmt, the three sets, openai_chat): setting one
 * forgets the memo. `pending` and `fast` are read before the memo is, and are set per chunk. */
static PyObject *s_memo_fields[5];

static int
ScanBase_setattro(PyObject *self, PyObject *name, PyObject *value)
{
    int result = PyObject_GenericSetAttr(self, name, value);
#ifdef MEMO
    ScanBase *scan = (ScanBase *)self;
    if (scan->memo_tail != 0) {
        /* an interned name (every attribute name in code) is one of them only as that object */
        int interned = PyUnicode_CheckExact(name) && PyUnicode_CHECK_INTERNED(name);
        for (int i = 0; i < 5; i++) {
            if (name == s_memo_fields[i] ||
                (!interned && PyUnicode_Check(name) &&
                 PyUnicode_Compare(name, s_memo_fields[i]) == 0)) {
                scan->memo_tail = 0;
                break;
            }
        }
    }
#endif
    return result;
}

static PyMemberDef ScanBase_members[] = {
    {"critical_names", T_OBJECT, offsetof(ScanBase, critical_names), 0, NULL},
    {"metadata", T_OBJECT, offsetof(ScanBase, metadata), 0, NULL},
    {"content_names", T_OBJECT, offsetof(ScanBase, content_names), 0, NULL},
    {"partial", T_OBJECT, offsetof(ScanBase, partial), 0, NULL},
    {"events", T_PYSSIZET, offsetof(ScanBase, events), 0, NULL},
    {"content", T_PYSSIZET, offsetof(ScanBase, content), 0, NULL},
    {"critical", T_BOOL, offsetof(ScanBase, critical), 0, NULL},
    {"fmt", T_PYSSIZET, offsetof(ScanBase, fmt), 0, NULL},
    {"pending", T_PYSSIZET, offsetof(ScanBase, pending), 0, NULL},
    {"fast", T_BOOL, offsetof(ScanBase, fast), 0, NULL},
    {"openai_chat", T_BOOL, offsetof(ScanBase, openai_chat), 0, NULL},
    {NULL},
};

/* ScanBase._memo: (where the memo's first string starts, the bytes from its closing quote to
 * the second string (0: one string), the bytes after the last string), None when there is
 * none; a memo of holes adds its holes' kinds ("S" string, "N" number) and the gaps between
 * them. For the tests, which check that their streams reach the memo. */
static PyObject *
ScanBase_memo(ScanBase *self, void *closure)
{
#ifdef MEMO
    if (self->memo_tail != 0 && self->memo_holes != 0) {
        char kinds[MEMO_HOLES + 1];
        PyObject *gaps = PyTuple_New(self->memo_holes - 1);
        if (gaps == NULL) {
            return NULL;
        }
        for (int h = 0; h < self->memo_holes; h++) {
            kinds[h] = (char)(self->memo_kinds >> h & 1u ? 'N' : 'S');
            if (h + 1 < self->memo_holes) {
                PyTuple_SET_ITEM(gaps, h, PyLong_FromLong(self->memo_gap[h]));
            }
        }
        kinds[self->memo_holes] = 0;
        return Py_BuildValue("(nnnsN)", (Py_ssize_t)self->memo_off, (Py_ssize_t)0,
                             (Py_ssize_t)self->memo_tail, kinds, gaps);
    }
    if (self->memo_tail != 0) {
        return Py_BuildValue("(nnn)", (Py_ssize_t)self->memo_off, (Py_ssize_t)self->memo_mid,
                             (Py_ssize_t)self->memo_tail);
    }
#endif
    Py_RETURN_NONE;
}

static PyGetSetDef ScanBase_getset[] = {
    {"_memo", (getter)ScanBase_memo, NULL, "The memo's (offset, middle, tail), None: none.", NULL},
    {NULL},
};

static PyMethodDef ScanBase_methods[] = {
    {"classify", (PyCFunction)ScanBase_classify, METH_O, "Whole events: how many, content."},
    {"feed_fast", (PyCFunction)ScanBase_feed_fast, METH_O, "feed() where sure; -1: not sure."},
    {NULL},
};

GC_TYPE(ScanBase_Type, ScanBase, "EventScanner's format and rules, and classify().");
