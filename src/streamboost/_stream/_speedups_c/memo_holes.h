/* The classify memo of holes: a content chunk's shape with every value that may vary (plain
 * strings and numbers, up to MEMO_HOLES) a hole, the bytes between them digested; its probe
 * (memo_probe_holes) and its learning (memo_learn_holes). A part of _speedups.c, included right
 * after memo.h, whose digest and string tests it uses.
 */

#ifdef MEMO
/* A stream whose chunks vary in more than their last two strings: OpenAI's Responses API
 * counts a "sequence_number" up, Gemini's chunks carry their text before the role, the model
 * version and the response id, and token counts that grow. After a memo of two strings (or
 * of holes) missed a content chunk, the memo learns every value of that chunk that may be a
 * hole: a string whose opening quote follows a colon that follows no "type" key, plain
 * (memo_value_plain), as the one and two-string memos take theirs; a number (a run of
 * MEMO_NUM bytes) after `"key":` or `"key": `, the key of letters, digits and '_', and
 * before ',' or '}'; neither on an event line. Why the answer stays the full classify's when
 * only the holes change: docs/architecture.md (Decisions, "The classify memo"). */
#define MEMO_HOLES 10 /* memo_gap holds MEMO_HOLES - 1 gaps */
static unsigned char MEMO_NUM[256];   /* a JSON number's bytes: 0-9 + - . e E */
static unsigned char MEMO_IDENT[256]; /* a number's key's bytes: A-Z a-z 0-9 _ */

static int on_event_line(const char *d, const char *value); /* memo_learn.h */

/* memo_probe's answer for a memo of holes: CONTENT when d[0, n) is the memo's head, then each
 * hole (a string to its first quote, plain and no key's name; a number, one MEMO_NUM byte or
 * more) and the gap after it, then the tail, and the head, gaps and tail digest as the memo's.
 * The lengths of head, gaps and tail are the shape's, so the blocks digested are a one-to-one
 * encoding of those bytes, as in memo_digest. */
static long
memo_probe_holes(ScanBase *scan, const char *d, Py_ssize_t n)
{
    Py_ssize_t head = scan->memo_off, tail = scan->memo_tail;
    if (n <= head + tail) {
        return 0;
    }
    const char *p = d + head, *end = d + n;
    const uint64_t *key = MEMO_KEY + 2 * ((head + 15) / 16);
    unsigned __int128 sum = nh_blocks(d, head, MEMO_KEY, 0);
    unsigned kinds = scan->memo_kinds;
    for (int h = 0, last = scan->memo_holes - 1;; h++) {
        const char *v = p;
        if (kinds >> h & 1u) {
            while (p < end && MEMO_NUM[(unsigned char)*p]) {
                p++;
            }
            if (p == v) {
                return 0;
            }
        }
        else if ((p = memo_value_close(v, end)) == NULL) {
            return 0;
        }
        if (h == last) {
            break;
        }
        Py_ssize_t gap = scan->memo_gap[h];
        if (end - p <= gap) {
            return 0;
        }
        sum = nh_blocks(p, gap, key, sum);
        key += 2 * ((gap + 15) / 16);
        p += gap;
    }
    if (p != end - tail) {
        return 0;
    }
    sum = nh_blocks(p, tail, key, sum);
    return (uint64_t)sum == scan->memo_digest[0] && (uint64_t)(sum >> 64) == scan->memo_digest[1]
               ? CONTENT
               : 0;
}

/* 1 when the opening quote `open` of a string ending at `close` may be a string hole: after a
 * colon (\s* around it) that follows no "type" key, plain, not on an event line; 0 when not
 * (empty, a key's name: "chat.completion.chunk"); -1 when a hole but for a stop byte (a quote,
 * a line end, [DONE]): one such chunk (a content "[DONE]") does not replace the memo. */
static int
memo_string_hole(const char *d, const char *colon, const char *open, const char *close)
{
    const char *q = colon;
    while (q > d && is_space(q[-1])) {
        q--;
    }
    if (q - d >= 6 && memcmp(q - 6, "\"type\"", 6) == 0) {
        return 0; /* a "type" value: _JSON_TYPE reads it */
    }
    if (close == open + 1 || on_event_line(d, open + 1)) {
        return 0;
    }
    Py_ssize_t len = close - open - 1;
    return memo_value_plain(open + 1, len) ? 1 : memo_no_key_name(open + 1, len) ? -1 : 0;
}

/* 1 when d[a, b) (MEMO_NUM bytes) may be a number hole: `"key":` or `"key": ` before it, the
 * key one MEMO_IDENT byte or more, ',' or '}' after it, not on an event line. */
static int
memo_number_hole(const char *d, const char *a, const char *b, const char *end)
{
    if (b == end || (*b != ',' && *b != '}')) {
        return 0;
    }
    const char *q = a > d && a[-1] == ' ' ? a - 1 : a;
    if (q - d < 4 || q[-1] != ':' || q[-2] != '"') {
        return 0;
    }
    const char *k = q - 2, *s = k;
    while (s > d && MEMO_IDENT[(unsigned char)s[-1]]) {
        s--;
    }
    return s < k && s > d && s[-1] == '"' && !on_event_line(d, a);
}

/* The shape of holes of the content chunk d[0, n) (SSE: sse), learned into scan's memo: 1 when
 * learned (or when the learning stopped: MEMO_LEARNS), or when a value is not plain this time
 * (memo_string_hole: the memo stays); 0 when the chunk has none (no hole, an escaped quote
 * ending a value, no "data:" before the first hole, over MEMO_BLOCKS). */
static int
memo_learn_holes(ScanBase *scan, const char *d, Py_ssize_t n, int sse)
{
    const char *p = d, *end = d + n, *start[MEMO_HOLES], *stop[MEMO_HOLES];
    unsigned kinds = 0;
    int holes = 0;
    while (holes < MEMO_HOLES) {
        const char *colon = memchr(p, ':', (size_t)(end - p)), *v;
        if (colon == NULL) {
            break;
        }
        for (v = colon + 1; v < end && (*v == ' ' || *v == '\t');) {
            v++;
        }
        if (v == end) {
            break;
        }
        if (*v == '"') {
            const char *c = memchr(v + 1, '"', (size_t)(end - v - 1));
            if (c == NULL || c[-1] == '\\') {
                return 0; /* an escaped quote: the next chunk's value would end elsewhere */
            }
            int kind = memo_string_hole(d, colon, v, c);
            if (kind < 0) {
                return 1; /* a value that is no hole this time: the memo stays */
            }
            if (kind > 0) {
                start[holes] = v + 1;
                stop[holes++] = c;
            }
            p = c + 1;
        }
        else if (MEMO_NUM[(unsigned char)*v]) {
            const char *b = v;
            while (b < end && MEMO_NUM[(unsigned char)*b]) {
                b++;
            }
            if (memo_number_hole(d, v, b, end)) {
                kinds |= 1u << holes;
                start[holes] = v;
                stop[holes++] = b;
            }
            p = b;
        }
        else {
            p = v;
        }
    }
    if (holes == 0) {
        return 0;
    }
    Py_ssize_t head = start[0] - d, tail = end - stop[holes - 1];
    Py_ssize_t blocks = (head + 15) / 16 + (tail + 15) / 16;
    for (int h = 0; h + 1 < holes; h++) {
        blocks += (start[h + 1] - stop[h] + 15) / 16;
    }
    if (blocks > MEMO_BLOCKS || (sse && find(d, head, "data:", 5) == NULL)) {
        return 0;
    }
    const uint64_t *key = MEMO_KEY + 2 * ((head + 15) / 16);
    unsigned __int128 sum = nh_blocks(d, head, MEMO_KEY, 0);
    int same = scan->memo_holes == holes && scan->memo_kinds == kinds &&
               scan->memo_off == head && scan->memo_tail == tail;
    for (int h = 0; h + 1 < holes; h++) {
        Py_ssize_t gap = start[h + 1] - stop[h];
        sum = nh_blocks(stop[h], gap, key, sum);
        key += 2 * ((gap + 15) / 16);
        same = same && scan->memo_gap[h] == gap;
        scan->memo_gap[h] = (uint16_t)gap;
    }
    sum = nh_blocks(end - tail, tail, key, sum);
    uint64_t digest[2] = {(uint64_t)sum, (uint64_t)(sum >> 64)};
    if (!same || scan->memo_digest[0] != digest[0] || scan->memo_digest[1] != digest[1]) {
        scan->memo_learns += 1; /* called only with a memo there, which missed this chunk */
        if (scan->memo_learns >= MEMO_LEARNS) {
            scan->memo_tail = 0; /* the shape keeps changing: no more probes either */
            return 1;
        }
    }
    scan->memo_off = (uint16_t)head;
    scan->memo_mid = MEMO_MID_HOLES;
    scan->memo_tail = (uint16_t)tail;
    scan->memo_holes = (unsigned char)holes;
    scan->memo_kinds = (uint16_t)kinds;
    scan->memo_digest[0] = digest[0];
    scan->memo_digest[1] = digest[1];
    return 1;
}

static void
memo_holes_init(void)
{
    for (const char *c = "0123456789+-.eE"; *c; c++) {
        MEMO_NUM[(unsigned char)*c] = 1;
    }
    for (int c = 0; c < 256; c++) {
        MEMO_IDENT[c] = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
                        (c >= 'a' && c <= 'z') || c == '_';
    }
}
#endif
