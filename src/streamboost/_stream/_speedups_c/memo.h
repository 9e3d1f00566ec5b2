/* The classify memo: the last content chunk's shape and its NH digest, so a chunk of the same
 * shape is CONTENT without the walk. A part of _speedups.c, included in order: one translation
 * unit, so the probe inlines into classify.
 */

/* -- the memo of the last content event's shape ----------------------------------------------- */

/* A stream's content chunks mostly differ in one string: an OpenAI chunk's "content", a
 * token chunk's "token", an Anthropic delta's "text"; the id, object, created, model, event
 * line and the tail after the string ("finish_reason":null, ...) repeat. For the last SSE or
 * NDJSON chunk classified CONTENT the memo keeps where that string starts (memo_off) and how
 * many bytes follow it (memo_tail), and a digest of those bytes; a chunk whose bytes there
 * have the same digest and whose string is a plain one (memo_value_plain) is CONTENT too,
 * without the walk. Why that is exact but for a digest collision: docs/architecture.md
 * (Decisions, "The classify memo"). The digest is NH (UMAC's hash) over 16-byte blocks with a
 * per-process random key: for two different byte strings of one length, the chance over the
 * key that their 128-bit digests agree is at most 2^-64. The Python twin has no memo; its
 * answers are the same. Where the compiler has no 128-bit product the memo is off. */
#if defined(__SIZEOF_INT128__)
#define MEMO 1
#define MEMO_BLOCKS 48 /* the most 16-byte blocks a memo digests (768 bytes) */
#define MEMO_LEARNS 8  /* a stream whose shape changed this often stops learning */
static uint64_t MEMO_KEY[2 * MEMO_BLOCKS];
static int memo_keyed; /* 0: os.urandom gave no key, nothing is learned */

static inline uint64_t
load64(const char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint64_t
load32(const char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* `sum` plus the NH terms of d[0, len), len >= 1, with the key words from `key` on. A length
 * of 16 or more is read in 16-byte blocks, the last one overlapping the one before it; a
 * shorter one is one block of two words, read as two overlapping loads (of 8, 4 or 1 bytes:
 * a memcpy to a zeroed block was a call per part). For one length the blocks are a one-to-one
 * encoding of the bytes (each byte is in some load, at a place fixed by the length), which is
 * all NH's bound needs. */
static inline unsigned __int128
nh_blocks(const char *d, Py_ssize_t len, const uint64_t *key, unsigned __int128 sum)
{
    if (len < 16) {
        uint64_t a, b;
        if (len >= 8) {
            a = load64(d);
            b = load64(d + len - 8);
        }
        else if (len >= 4) {
            a = load32(d);
            b = load32(d + len - 4);
        }
        else {
            a = (unsigned char)d[0] | (uint64_t)(unsigned char)d[len / 2] << 8 |
                (uint64_t)(unsigned char)d[len - 1] << 16;
            b = 0;
        }
        return sum + (unsigned __int128)(a + key[0]) * (b + key[1]);
    }
    const char *last = d + len - 16;
    for (; d < last; d += 16, key += 2) {
        sum += (unsigned __int128)(load64(d) + key[0]) * (load64(d + 8) + key[1]);
    }
    return sum + (unsigned __int128)(load64(last) + key[0]) * (load64(last + 8) + key[1]);
}

/* The blocks a (head, tail) pair takes; over MEMO_BLOCKS: no memo for that shape. */
static inline Py_ssize_t
memo_blocks(Py_ssize_t head, Py_ssize_t tail)
{
    return (head + 15) / 16 + (tail + 15) / 16;
}

/* The digest of d[0, head) and d[n - tail, n). */
static void
memo_digest(const char *d, Py_ssize_t n, Py_ssize_t head, Py_ssize_t tail, uint64_t out[2])
{
    unsigned __int128 sum = nh_blocks(d, head, MEMO_KEY, 0);
    sum = nh_blocks(d + n - tail, tail, MEMO_KEY + 2 * ((head + 15) / 16), sum);
    out[0] = (uint64_t)sum;
    out[1] = (uint64_t)(sum >> 64);
}

/* The bytes a content string must not hold for the memo's answer to stand: a quote (it ends
 * the string, or as \" it could open a key), LF and CR (the event's lines), '[' ("[DONE]"). */
static unsigned char MEMO_STOP[256];
static uint32_t key_name_lengths; /* bit L: some key's name (without its quotes) has L bytes */
static unsigned char key_name_first[256]; /* 1: some key's name starts with this byte */

/* 1 when v[0, len) cannot change what classify answers: not empty, none of MEMO_STOP but a
 * '[' that starts no "[DONE]", and not one of the keys' names (as the whole string it would,
 * with the quotes around it, be that key). Backslashes are kept: without a quote no escape
 * reaches a key, and the classifiers never read the string's bytes otherwise. */
static int
memo_value_plain(const char *v, Py_ssize_t len)
{
    if (len <= 0) {
        return 0; /* "content":"" is no content */
    }
    const char *end = v + len;
    for (const char *p = v; p < end; p++) {
        if (MEMO_STOP[(unsigned char)*p]) {
            if (*p != '[' || (end - p >= 6 && memcmp(p, "[DONE]", 6) == 0)) {
                return 0;
            }
        }
    }
    if (len < 32 && (key_name_lengths >> len) & 1u && key_name_first[(unsigned char)v[0]]) {
        for (int k = 0; k < K_COUNT; k++) {
            if (KEYS[k].len - 2 == len && KEYS[k].text[1] == v[0] &&
                memcmp(KEYS[k].text + 1, v, (size_t)len) == 0) {
                return 0;
            }
        }
    }
    return 1;
}

/* classify's answer from the memo: CONTENT when the chunk has the memo's shape, else 0. */
static inline long
memo_probe(ScanBase *scan, const char *d, Py_ssize_t n)
{
    Py_ssize_t head = scan->memo_off, tail = scan->memo_tail;
    if (tail == 0 || n <= head + tail || d[n - tail] != '"' || d[head - 1] != '"' ||
        !memo_value_plain(d + head, n - tail - head)) {
        return 0;
    }
    uint64_t digest[2];
    memo_digest(d, n, head, tail, digest);
    return digest[0] == scan->memo_digest[0] && digest[1] == scan->memo_digest[1] ? CONTENT : 0;
}

/* The quote before `p` (a quote in [d, p)), NULL when none. The bytes looked at are the
 * chunk's last ones, a few dozen: a loop, not a search. */
static inline const char *
quote_before(const char *d, const char *p)
{
    while (p > d) {
        if (*--p == '"') {
            return p;
        }
    }
    return NULL;
}

/* The string the memo varies: from the chunk's end back, pair of quotes by pair (at most
 * MEMO_PAIRS), the first whose opening quote follows a colon (\s* around it) that does not
 * follow a "type" key; *value its first byte, *close its closing quote. 0: none, or an
 * escaped quote on the way (a content string with one would teach a shape the next chunk
 * does not have). That the quote opening the string is no key's closing quote, nor a "type"
 * value's opening one, is what the memo's answer needs (docs/architecture.md); which string
 * is taken only decides how often the memo hits: the last value, as the token, NDJSON and
 * Anthropic chunks end, or the one before an OpenAI chunk's "finish_reason" key. */
#define MEMO_PAIRS 3
static int
memo_string(const char *d, Py_ssize_t n, const char **value, const char **close)
{
    const char *p = d + n;
    for (int pair = 0; pair < MEMO_PAIRS; pair++) {
        const char *c = quote_before(d, p), *o = c == NULL ? NULL : quote_before(d, c);
        if (o == NULL || o == d || o[-1] == '\\' || c[-1] == '\\') {
            return 0;
        }
        const char *q = o;
        while (q > d && is_space(q[-1])) {
            q--;
        }
        if (q > d && q[-1] == ':') {
            for (q--; q > d && is_space(q[-1]); q--) {
            }
            if (q - d >= 6 && memcmp(q - 6, "\"type\"", 6) == 0) {
                return 0; /* the string would be a "type" value: _JSON_TYPE reads it */
            }
            *value = o + 1;
            *close = c;
            return 1;
        }
        p = o;
    }
    return 0;
}

/* After classify answered CONTENT for an SSE or NDJSON chunk: remember its shape around its
 * string (memo_string) when that is plain, an SSE chunk has "data:" before it, its line is no
 * event line, and the scanner's sets are frozensets (a set could change under the memo). */
static void
memo_learn(ScanBase *scan, const char *d, Py_ssize_t n, int sse)
{
    if (!memo_keyed || scan->memo_learns >= MEMO_LEARNS ||
        !PyFrozenSet_CheckExact(scan->metadata) ||
        !(is_none(scan->critical_names) || PyFrozenSet_CheckExact(scan->critical_names)) ||
        !(is_none(scan->content_names) || PyFrozenSet_CheckExact(scan->content_names))) {
        return;
    }
    const char *value, *close;
    if (!memo_string(d, n, &value, &close) || !memo_value_plain(value, close - value)) {
        return;
    }
    Py_ssize_t head = value - d, tail = d + n - close;
    if (memo_blocks(head, tail) > MEMO_BLOCKS || (sse && find(d, head, "data:", 5) == NULL)) {
        return;
    }
    /* the string's line must not be an event line (its name): it starts after an LF or a CR
     * (NDJSON may hold CRs; an SSE chunk with one is never CONTENT) */
    const char *line = value;
    while (line > d && line[-1] != '\n' && line[-1] != '\r') {
        line--;
    }
    if (value - line >= 6 && memcmp(line, "event:", 6) == 0) {
        return;
    }
    uint64_t digest[2];
    memo_digest(d, n, head, tail, digest);
    if (scan->memo_tail != 0 && (scan->memo_off != head || scan->memo_tail != tail ||
                                 scan->memo_digest[0] != digest[0] ||
                                 scan->memo_digest[1] != digest[1])) {
        scan->memo_learns += 1;
        if (scan->memo_learns >= MEMO_LEARNS) {
            scan->memo_tail = 0; /* the shape keeps changing: no more probes either */
            return;
        }
    }
    scan->memo_off = (uint16_t)head;
    scan->memo_tail = (uint16_t)tail;
    scan->memo_digest[0] = digest[0];
    scan->memo_digest[1] = digest[1];
}

/* The memo's key, random per process (os.urandom). */
static int
memo_init(void)
{
    MEMO_STOP['"'] = MEMO_STOP['\n'] = MEMO_STOP['\r'] = MEMO_STOP['['] = 1;
    for (int k = 0; k < K_COUNT; k++) {
        key_name_lengths |= 1u << (KEYS[k].len - 2); /* every key is shorter than 34 */
        key_name_first[(unsigned char)KEYS[k].text[1]] = 1;
    }
    PyObject *os = PyImport_ImportModule("os");
    if (os == NULL) {
        return -1;
    }
    PyObject *key = PyObject_CallMethod(os, "urandom", "n", (Py_ssize_t)sizeof(MEMO_KEY));
    Py_DECREF(os);
    if (key == NULL || !PyBytes_Check(key) ||
        PyBytes_GET_SIZE(key) != (Py_ssize_t)sizeof(MEMO_KEY)) {
        /* no randomness (an OSError): the kernel still works, without the memo */
        Py_XDECREF(key);
        PyErr_Clear();
        memo_keyed = 0;
        return 0;
    }
    memcpy(MEMO_KEY, PyBytes_AS_STRING(key), sizeof(MEMO_KEY));
    Py_DECREF(key);
    memo_keyed = 1;
    return 0;
}
#else
static int
memo_init(void)
{
    return 0;
}
#endif
