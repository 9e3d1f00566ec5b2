/* streamboost._stream._speedups: the C twin of the fast-path kernel (_kernel.py).
 *
 * Four base types with the fields listed in _table.py and the functions on them that a body
 * chunk runs, and Receiving; each the same rule as its Python twin in _kernel.py
 * (tests/test_kernel.py runs both on the same inputs):
 *
 * - ScanBase.classify(body): is the chunk whole events, none critical, and how many of them
 *   carry output tokens (CONTENT / OTHER for one, packed counts for several), or GENERAL (not
 *   sure: the scanner's general path decides); ScanBase.feed_fast(data): the scanner's feed
 *   for events cut across chunks, where it is sure;
 * - BatchBase.add(body, size, events, content, critical): join whole events to a batch, and
 *   say whether a flush is due (WAKE) or the app must wait (FULL);
 * - RecordBase.took / produced / wrote / sent: the per-chunk changes to a stream's record
 *   (produced: when the app sent a body message, the gaps between its content events);
 * - Sender.send(message): after use(mode), takes a chunk it is sure of and hands every other
 *   message to its ``general`` callable (set by the Python sender, not looked up by name);
 *   in batch mode a due flush or a full buffer calls the batch's own ``wake()`` / ``room()``
 *   methods (looked up then, not stored: no bound method objects per stream);
 * - Receiving(listener): one receive() of the app, the server's awaited through without a
 *   coroutine frame; it tells the listener of an http.disconnect.
 *
 * The numbers (kinds, codes, formats, modes) are read from _table.py when this module is
 * imported; nothing here spells one.
 *
 * The code is in parts, one concept each (_speedups_c/*.h, included at the end of this file in
 * the order they must be defined), yet one translation unit: the per-chunk path relies on the
 * compiler inlining static functions across the parts (classify into Sender.send, the walk and
 * the classifiers into classify), which separate object files would stop without LTO. The parts
 * are no headers of their own: each is included once, here, and uses what the parts before it
 * define. The folder is not named _speedups/: a directory of that name would import as a
 * namespace package where the shared object is missing, hiding the pure-Python fallback.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

static PyObject *s_type, *s_body_type, *s_more_body, *s_body, *s_wake, *s_room, *s_general, *s_time;
static PyObject *s_finishing, *s_arm_timer;
static long GENERAL, CONTENT, OTHER, EVENTS_SHIFT, FORMAT_SSE, FORMAT_LINES, FORMAT_CHUNKS;
static long WAKE, FULL, MODE_GENERAL, MODE_DIRECT, MODE_BATCH;

/* For the few small functions of the per-chunk path that the compiler would otherwise call
 * (measured: clock_read and is_body_type cost ~40 instructions a chunk more as calls). */
#if defined(__GNUC__) || defined(__clang__)
#define CHUNK_INLINE static inline __attribute__((always_inline))
#else
#define CHUNK_INLINE static inline
#endif

/* The gap buckets' upper bounds (_table.GAP_BOUNDS), read at import; GAP_N of them. */
#define GAP_SLOTS 16
static double GAP_BOUNDS[GAP_SLOTS];
static Py_ssize_t GAP_N;

#define GC_TYPE(NAME, STRUCT, DOC)                                                              \
    static PyTypeObject NAME = {                                                                \
        PyVarObject_HEAD_INIT(NULL, 0).tp_name = "streamboost._stream._speedups." #STRUCT,      \
        .tp_basicsize = sizeof(STRUCT),                                                         \
        .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,              \
        .tp_doc = DOC,                                                                          \
        .tp_traverse = (traverseproc)STRUCT##_traverse,                                         \
        .tp_clear = (inquiry)STRUCT##_clear,                                                    \
        .tp_dealloc = (destructor)STRUCT##_dealloc,                                             \
        .tp_members = STRUCT##_members,                                                         \
        .tp_methods = STRUCT##_methods,                                                         \
        .tp_new = PyType_GenericNew,                                                            \
    }

#define DEALLOC(STRUCT)                                                                         \
    static void STRUCT##_dealloc(STRUCT *self)                                                  \
    {                                                                                           \
        PyObject_GC_UnTrack(self);                                                              \
        STRUCT##_clear(self);                                                                   \
        Py_TYPE(self)->tp_free((PyObject *)self);                                               \
    }

#include "_speedups_c/record.h"
#include "_speedups_c/slots.h"
#include "_speedups_c/tally.h"
#include "_speedups_c/scan.h"
#include "_speedups_c/names.h"
#include "_speedups_c/keys.h"
#include "_speedups_c/walk.h"
#include "_speedups_c/find.h"
#include "_speedups_c/rules.h"
#include "_speedups_c/memo.h"
#include "_speedups_c/memo_holes.h"
#include "_speedups_c/memo_learn.h"
#include "_speedups_c/classify.h"
#include "_speedups_c/feed_crlf.h"
#include "_speedups_c/feed.h"
#include "_speedups_c/scan_type.h"
#include "_speedups_c/batch.h"
#include "_speedups_c/message.h"
#include "_speedups_c/clock.h"
#include "_speedups_c/sender.h"
#include "_speedups_c/batch_send.h"
#include "_speedups_c/sender_type.h"
#include "_speedups_c/receive.h"
#include "_speedups_c/module.h"
