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

/* The blocks a (head, middle, tail) shape takes; over MEMO_BLOCKS: no memo for that shape. */
static inline Py_ssize_t
memo_blocks(Py_ssize_t head, Py_ssize_t mid, Py_ssize_t tail)
{
    return (head + 15) / 16 + (mid + 15) / 16 + (tail + 15) / 16;
}

/* The digest of d[0, head), of the `mid` bytes at `middle` (none: 0) and of d[n - tail, n).
 * For one shape the three lengths are fixed, so the blocks stay a one-to-one encoding; with
 * no middle it is the one-string digest (inlined everywhere: a constant 0 drops that part). */
static inline __attribute__((always_inline)) void
memo_digest(const char *d, Py_ssize_t n, Py_ssize_t head, const char *middle, Py_ssize_t mid,
            Py_ssize_t tail, uint64_t out[2])
{
    const uint64_t *key = MEMO_KEY + 2 * ((head + 15) / 16);
    unsigned __int128 sum = nh_blocks(d, head, MEMO_KEY, 0);
    if (mid != 0) {
        sum = nh_blocks(middle, mid, key, sum);
        key += 2 * ((mid + 15) / 16);
    }
    sum = nh_blocks(d + n - tail, tail, key, sum);
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
static inline __attribute__((always_inline)) int
memo_no_key_name(const char *v, Py_ssize_t len)
{
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
    return memo_no_key_name(v, len);
}

/* The closing quote of the plain string at v (memo_value_plain's test) when it comes before
 * `limit`, NULL otherwise: a two-string memo's first string and a memo of holes' strings, whose
 * lengths vary. 16 bytes at a time with SSE2 where built for x86-64 (walk.h includes it), then
 * (or after a '[') a byte at a time; inlined into each probe. */
static inline __attribute__((always_inline)) const char *
memo_value_close(const char *v, const char *limit)
{
    const char *p = v;
#if defined(__SSE2__) && (defined(__GNUC__) || defined(__clang__))
    const __m128i quote = _mm_set1_epi8('"'), lf = _mm_set1_epi8('\n');
    const __m128i cr = _mm_set1_epi8('\r'), bracket = _mm_set1_epi8('[');
    for (; limit - p >= 16; p += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)p);
        int stops = _mm_movemask_epi8(
            _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, lf)),
                         _mm_or_si128(_mm_cmpeq_epi8(x, cr), _mm_cmpeq_epi8(x, bracket))));
        if (stops != 0) {
            p += __builtin_ctz((unsigned)stops);
            break; /* the loop below tells that byte */
        }
    }
#endif
    for (; p < limit; p++) {
        if (MEMO_STOP[(unsigned char)*p]) {
            if (*p == '"') {
                return p > v && memo_no_key_name(v, p - v) ? p : NULL;
            }
            if (*p != '[' || (limit - p >= 6 && memcmp(p, "[DONE]", 6) == 0)) {
                return NULL;
            }
        }
    }
    return NULL;
}

/* A two-string memo's probe (memo_probe's): the first string ends at its first quote; an
 * escaped one there leaves a middle that does not digest as the memo's (or, byte for byte,
 * is the memo's: the same answer). */
#define MEMO_MID_HOLES 0xFFFF /* memo_mid of a memo of holes (memo_holes.h) */
static long memo_probe_holes(ScanBase *scan, const char *d, Py_ssize_t n);

static __attribute__((noinline)) long
memo_probe_two(ScanBase *scan, const char *d, Py_ssize_t n)
{
    Py_ssize_t head = scan->memo_off, mid = scan->memo_mid, tail = scan->memo_tail;
    if (mid == MEMO_MID_HOLES) {
        return memo_probe_holes(scan, d, n);
    }
    if (n <= head + mid + tail) {
        return 0;
    }
    const char *middle = memo_value_close(d + head, d + n - tail - mid);
    if (middle == NULL || !memo_value_plain(middle + mid, d + n - tail - (middle + mid))) {
        return 0;
    }
    uint64_t digest[2];
    memo_digest(d, n, head, middle, mid, tail, digest);
    return digest[0] == scan->memo_digest[0] && digest[1] == scan->memo_digest[1] ? CONTENT : 0;
}

/* classify's answer from the memo: CONTENT when the chunk has the memo's shape, else 0. A
 * memo of holes (memo_mid MEMO_MID_HOLES) is asked where the one and two-string tests end:
 * those shapes pay nothing for it on a hit. */
static inline long
memo_probe(ScanBase *scan, const char *d, Py_ssize_t n)
{
    Py_ssize_t head = scan->memo_off, tail = scan->memo_tail;
    if (tail == 0 || n <= head + tail || d[n - tail] != '"' || d[head - 1] != '"') {
        return tail != 0 && scan->memo_mid == MEMO_MID_HOLES ? memo_probe_holes(scan, d, n) : 0;
    }
    if (scan->memo_mid != 0) {
        return memo_probe_two(scan, d, n);
    }
    if (!memo_value_plain(d + head, n - tail - head)) {
        return 0;
    }
    uint64_t digest[2];
    memo_digest(d, n, head, NULL, 0, tail, digest);
    return digest[0] == scan->memo_digest[0] && digest[1] == scan->memo_digest[1] ? CONTENT : 0;
}
#endif
