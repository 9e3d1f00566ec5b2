/* The one walk over a body that finds every key, LF, CR and "[DONE]" together (scan_keys): SSE2,
 * 16 bytes at a time, where built for it; scalar elsewhere. A part of _speedups.c, included in
 * order: one translation unit, so the walk's steps inline into scan_keys.
 */


/* One walk's state: as in Python, a key's next occurrence is looked for after the end of the
 * last one (after the matched value for "type"). */
typedef struct {
    const char *d, *end;
    PyObject *type_names; /* NULL: "type" values are not asked */
    int first_type;       /* the first "type" value is wanted */
    Py_ssize_t next[K_COUNT];
    Keys *out;
} Walk;

/* The index of the lowest set bit of `bits` (not 0). */
static inline int
lowest_bit(unsigned int bits)
{
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_ctz(bits);
#else
    int i = 0;
    while (!(bits & 1u)) {
        bits >>= 1;
        i++;
    }
    return i;
#endif
}

/* The keys that may start at the quote `p` (`candidates`: KEY_FIRST of the byte after it). */
static inline int
keys_at(Walk *w, const char *p, unsigned int candidates)
{
    Keys *out = w->out;
    const char *end = w->end;
    Py_ssize_t pos = p - w->d;
    if (end - p < 6) {
        return 0; /* no key is shorter */
    }
    uint32_t word;
    memcpy(&word, p, 4); /* one load: most candidates differ from every key in these bytes */
    while (candidates) {
        int k = lowest_bit(candidates);
        candidates &= candidates - 1;
        if (word != key_word[k] || end - p < KEYS[k].len || pos < w->next[k] ||
            memcmp(p + 4, KEYS[k].text + 4, (size_t)KEYS[k].len - 4) != 0) {
            continue;
        }
        const char *q = p + KEYS[k].len;
        w->next[k] = pos + KEYS[k].len;
        if (k == K_CHAT) {
            out->found[k] = 1;
        }
        else if (k == K_TYPE) {
            int names = w->type_names != NULL && !out->found[k];
            if (!names && !(w->first_type && out->type_at == NULL)) {
                continue;
            }
            const char *stop, *value;
            int in = type_value_in(q, end, names ? w->type_names : NULL, &stop, &value);
            if (in < 0) {
                return -1;
            }
            out->found[k] = (char)(out->found[k] || in);
            if (stop != NULL && out->type_at == NULL) {
                out->type_at = value;
                out->type_len = stop - 1 - value;
            }
            if (stop == NULL) {
                w->next[k] = pos + 1; /* no match here: the regex goes on from the next byte */
            }
            else {
                w->next[k] = stop - w->d;
            }
        }
        else if (!out->found[k]) {
            out->found[k] = (char)value_after(q, end);
        }
    }
    return 0;
}

#if defined(__SSE2__) && (defined(__GNUC__) || defined(__clang__))
#include <emmintrin.h>
#define VECTOR_WALK 1
#endif

/* A byte the walk stops at (an LF, a CR, a '[' before a 'D', or a quote) at `p`. */
static inline int
byte_at(Walk *w, const char *p)
{
    Keys *out = w->out;
    const char *d = w->d, *end = w->end;
    switch (*p) {
    case '\n':
        if (out->first_lf < 0) {
            out->first_lf = p - d;
        }
        if (out->first_pair < 0 && p + 1 < end && p[1] == '\n') {
            out->first_pair = p - d;
        }
        return 0;
    case '\r':
        out->any_cr = 1;
        return 0;
    case '[':
        if (end - p >= 6 && memcmp(p, "[DONE]", 6) == 0) {
            out->done = 1;
        }
        return 0;
    case '"':
        if (p + 1 < end) {
            unsigned int candidates = KEY_FIRST[(unsigned char)p[1]];
            if (candidates) {
                return keys_at(w, p, candidates);
            }
        }
        return 0;
    default:
        return 0;
    }
}

/* One walk over the body: the keys (every quote is where a key may start; only a quote
 * followed by a key's second byte is looked at, in order), the LFs, CRs and "[DONE]". With
 * SSE2, 16 bytes at a time, a few vector compares each: a 200-byte OpenAI chunk has some 35
 * quotes, and a memchr call per quote cost ~25 instructions; its LFs, CRs and '[' were one
 * memchr pass each. Only the rare hits (a key's quote, an LF, a "[D") are looked at one by
 * one. The last block overlaps the one before it. */
static int
scan_keys(const char *d, Py_ssize_t n, PyObject *type_names, int first_type, Keys *out)
{
    memset(out, 0, sizeof(*out));
    out->first_lf = out->first_pair = -1;
    Walk w = {d, d + n, type_names, first_type, {0}, out};
    Py_ssize_t i = 0;
#ifdef VECTOR_WALK
    if (key_letters && n >= 17) {
        const __m128i quote = _mm_set1_epi8('"'), lf = _mm_set1_epi8('\n');
        const __m128i cr = _mm_set1_epi8('\r'), bracket = _mm_set1_epi8('[');
        const __m128i big_d = _mm_set1_epi8('D');
        const __m128i l0 = _mm_set1_epi8(key_letter[0]), l1 = _mm_set1_epi8(key_letter[1]);
        const __m128i l2 = _mm_set1_epi8(key_letter[2]), l3 = _mm_set1_epi8(key_letter[3]);
        __m128i crs = _mm_setzero_si128();
        for (Py_ssize_t done = 0; done < n - 1;) {
            Py_ssize_t at = done + 17 <= n ? done : n - 17;
            __m128i here = _mm_loadu_si128((const __m128i *)(d + at));
            __m128i after = _mm_loadu_si128((const __m128i *)(d + at + 1));
            __m128i letter = _mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(after, l0), _mm_cmpeq_epi8(after, l1)),
                _mm_or_si128(_mm_cmpeq_epi8(after, l2), _mm_cmpeq_epi8(after, l3)));
            __m128i hits = _mm_or_si128(
                _mm_and_si128(_mm_cmpeq_epi8(here, quote), letter),
                _mm_or_si128(_mm_cmpeq_epi8(here, lf),
                             _mm_and_si128(_mm_cmpeq_epi8(here, bracket),
                                           _mm_cmpeq_epi8(after, big_d))));
            crs = _mm_or_si128(crs, _mm_cmpeq_epi8(here, cr));
            unsigned int bits = (unsigned int)_mm_movemask_epi8(hits);
            if (bits) {
                bits &= ~((1u << (done - at)) - 1u); /* the overlap was seen */
                while (bits) {
                    const char *p = d + at + lowest_bit(bits);
                    bits &= bits - 1;
                    if (byte_at(&w, p) < 0) {
                        return -1;
                    }
                }
            }
            done = at + 16;
        }
        out->any_cr = _mm_movemask_epi8(crs) != 0;
        i = n - 1; /* the last byte: an LF or a CR (nothing else starts there) */
    }
#endif
    for (; i < n; i++) {
        if (byte_at(&w, d + i) < 0) {
            return -1;
        }
    }
    return 0;
}
