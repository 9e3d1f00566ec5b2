/* ScanBase's fields and GC slots, and the byte helpers the classifiers use (find, last_lf,
 * is_space). Its classify() and type object come after the walk and the memo (classify.h). A
 * part of _speedups.c, included in order: one translation unit, so the classifiers inline into
 * classify.
 */

/* -- ScanBase -------------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *critical_names; /* frozenset of bytes, or None */
    PyObject *metadata;       /* frozenset of bytes */
    PyObject *content_names;  /* frozenset of bytes, or None: a protocol's only content events */
    PyObject *partial;        /* list of the unfinished event's pieces (bytes), or NULL/None */
    Py_ssize_t fmt, pending;
    Py_ssize_t events, content; /* of the events the last chunk fed completed */
    char fast, openai_chat;
    /* The memo of the last content event's shape (see memo_probe): bytes [0, memo_off) and
     * the last memo_tail bytes around its last string value, and with two strings (memo_mid
     * not 0) the memo_mid bytes from the first one's closing quote to the second one;
     * memo_tail 0: none. A memo of holes (memo_holes not 0, memo_mid 0xFFFF) has memo_holes
     * values that vary, strings and numbers (bit h of memo_kinds: hole h is a number), the
     * memo_gap[h] bytes from hole h's end to hole h + 1 (memo_holes.h). After the flags, plus
     * the 16-byte digest: 44 bytes per stream (+16 for the holes). */
    uint16_t memo_off, memo_mid, memo_tail;
    unsigned char memo_learns; /* memos replaced by another shape; MEMO_LEARNS: stop */
    char critical; /* the last chunk fed completed a critical event */
    unsigned char memo_holes;
    uint16_t memo_kinds;
    uint16_t memo_gap[9];
    uint64_t memo_digest[2];
} ScanBase;

static int
ScanBase_traverse(ScanBase *self, visitproc visit, void *arg)
{
    Py_VISIT(self->critical_names);
    Py_VISIT(self->metadata);
    Py_VISIT(self->content_names);
    Py_VISIT(self->partial);
    return 0;
}

static int
ScanBase_clear(ScanBase *self)
{
    Py_CLEAR(self->critical_names);
    Py_CLEAR(self->metadata);
    Py_CLEAR(self->content_names);
    Py_CLEAR(self->partial);
    return 0;
}

DEALLOC(ScanBase)

/* memmem for the short needles here: glibc's memmem is its generic two-way search (~1.3k
 * instructions on a 200-byte OpenAI chunk), where memchr for the first byte is vectorised. */
static const char *
find(const char *d, Py_ssize_t n, const char *needle, Py_ssize_t len)
{
    const char *end = d + n, *p = d;
    while (end - p >= len) {
        p = memchr(p, needle[0], (size_t)(end - p - len + 1));
        if (p == NULL) {
            return NULL;
        }
        if (len == 2 ? p[1] == needle[1] : memcmp(p + 1, needle + 1, (size_t)(len - 1)) == 0) {
            return p;
        }
        p++;
    }
    return NULL;
}

/* The last LF in d[0, n), NULL: none (memrchr where the C library has it). */
static inline const char *
last_lf(const char *d, Py_ssize_t n)
{
#ifdef __GLIBC__
    return memrchr(d, '\n', (size_t)n);
#else
    while (n > 0) {
        if (d[--n] == '\n') {
            return d + n;
        }
    }
    return NULL;
#endif
}

/* Where classify_crlf writes a CRLF chunk's LF version (one per process: the GIL is held;
 * crlf_busy also keeps the memo off that copy). */
#define CRLF_SIZE 8192
static char crlf_buffer[CRLF_SIZE];
static int crlf_busy;

static inline int
is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
