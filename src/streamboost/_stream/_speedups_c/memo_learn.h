/* The classify memo's learning: which string of a content chunk varies (memo_string), the
 * shape around it kept after classify answered CONTENT (memo_learn), and the memo's key
 * (memo_init). A part of _speedups.c, included right after memo.h, whose digest it uses.
 */

#ifdef MEMO
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
 * Anthropic chunks end, or the one before an OpenAI chunk's "finish_reason", "logprobs"
 * and "usage" keys. */
#define MEMO_PAIRS 6
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

/* 1 when the string at `value` is on an event line (its name): its line starts after an LF
 * or a CR (NDJSON may hold CRs; an SSE chunk with one is never CONTENT). */
static int
on_event_line(const char *d, const char *value)
{
    const char *line = value;
    while (line > d && line[-1] != '\n' && line[-1] != '\r') {
        line--;
    }
    return value - line >= 6 && memcmp(line, "event:", 6) == 0;
}

/* After classify answered CONTENT for an SSE or NDJSON chunk: remember its shape around its
 * last string (memo_string) when that is plain, an SSE chunk has "data:" before it, its line
 * is no event line, and the scanner's sets are frozensets (a set could change under the memo).
 * When a memo is there (so it missed this chunk), the shape around the last two strings is
 * learned where there are two such: an OpenAI chat chunk's "content" and the "obfuscation"
 * OpenAI pads every chunk with, random characters of varying length. A two-string memo is
 * kept when this chunk's first string is not plain (a quote in the content): one such chunk
 * does not make the stream's shape change twice. When a memo of two strings or of holes
 * missed a chunk whose two strings are plain, the chunk's shape of holes is learned
 * (memo_learn_holes) where it has one. */
static void
memo_learn(ScanBase *scan, const char *d, Py_ssize_t n, int sse)
{
    if (!memo_keyed || scan->memo_learns >= MEMO_LEARNS ||
        !PyFrozenSet_CheckExact(scan->metadata) ||
        !(is_none(scan->critical_names) || PyFrozenSet_CheckExact(scan->critical_names)) ||
        !(is_none(scan->content_names) || PyFrozenSet_CheckExact(scan->content_names))) {
        return;
    }
    const char *value, *close, *first, *first_close;
    if (!memo_string(d, n, &value, &close) || !memo_value_plain(value, close - value) ||
        on_event_line(d, value)) {
        return;
    }
    Py_ssize_t head = value - d, mid = 0, tail = d + n - close;
    const char *middle = NULL;
    if (scan->memo_tail != 0) {
        if (memo_string(d, value - 1 - d, &first, &first_close) &&
            memo_value_plain(first, first_close - first) && !on_event_line(d, first)) {
            if (scan->memo_mid != 0 &&
                memo_learn_holes(scan, d, n, sse)) {
                return; /* two strings or holes missed: the chunk's holes (memo_holes.h) */
            }
            middle = first_close;
            mid = value - first_close;
            head = first - d;
        }
        else if (scan->memo_mid != 0) { /* two strings or holes */
            return;
        }
    }
    if (memo_blocks(head, mid, tail) > MEMO_BLOCKS ||
        (sse && find(d, head, "data:", 5) == NULL)) {
        return;
    }
    uint64_t digest[2];
    memo_digest(d, n, head, middle, mid, tail, digest);
    if (scan->memo_tail != 0 &&
        (scan->memo_off != head || scan->memo_mid != mid || scan->memo_tail != tail ||
         scan->memo_digest[0] != digest[0] || scan->memo_digest[1] != digest[1])) {
        scan->memo_learns += 1;
        if (scan->memo_learns >= MEMO_LEARNS) {
            scan->memo_tail = 0; /* the shape keeps changing: no more probes either */
            return;
        }
    }
    scan->memo_holes = 0;
    scan->memo_off = (uint16_t)head;
    scan->memo_mid = (uint16_t)mid;
    scan->memo_tail = (uint16_t)tail;
    scan->memo_digest[0] = digest[0];
    scan->memo_digest[1] = digest[1];
}

/* The memo's key, random per process (os.urandom). */
static int
memo_init(void)
{
    MEMO_STOP['"'] = MEMO_STOP['\n'] = MEMO_STOP['\r'] = MEMO_STOP['['] = 1;
    memo_holes_init();
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
