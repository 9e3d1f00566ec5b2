/* The keys looked for one at a time, without the walk (no coalescing: no critical events asked):
 * find_key, has_value, type_value, has_usage. A part of _speedups.c, included in order: one
 * translation unit, so they inline into the classifiers.
 */

/* -- the keys looked for one at a time (no coalescing: no critical events asked) ---------- */


#ifdef VECTOR_WALK
/* The places in [at, at + 16) where KEYS[k] may start (its first and last letter there). */
static inline unsigned int
key_places(const char *at, Py_ssize_t len, __m128i first, __m128i last)
{
    __m128i a = _mm_loadu_si128((const __m128i *)(at + 1));
    __m128i b = _mm_loadu_si128((const __m128i *)(at + len - 2));
    return (unsigned int)_mm_movemask_epi8(
        _mm_and_si128(_mm_cmpeq_epi8(a, first), _mm_cmpeq_epi8(b, last)));
}

/* The first of the places (`bits`, from `at`) where the whole key is, NULL when none. */
static inline const char *
key_in(const char *at, unsigned int bits, const char *key, Py_ssize_t len)
{
    for (; bits; bits &= bits - 1) {
        const char *place = at + lowest_bit(bits);
        if (memcmp(place, key, (size_t)len) == 0) {
            return place;
        }
    }
    return NULL;
}
#endif

/* The first KEYS[k] in [p, end), NULL when none, by memchr for a byte of the key that is rare
 * in JSON (KEY_RARE), not for its quote: a 200-byte OpenAI chunk has some 35 quotes, and a
 * memchr call costs ~25 instructions. */
static const char *
find_rare(const char *p, const char *end, int k)
{
    const char *key = KEYS[k].text;
    Py_ssize_t len = KEYS[k].len, off = KEY_RARE[k];
    while (end - p >= len) {
        const char *hit = memchr(p + off, key[off], (size_t)(end - p - len + 1));
        if (hit == NULL) {
            return NULL;
        }
        if (memcmp(hit - off, key, (size_t)len) == 0) {
            return hit - off;
        }
        p = hit - off + 1;
    }
    return NULL;
}

/* The first KEYS[k] in [p, end) (`d` the body's start), NULL when none. "content" has no
 * byte that is rare in JSON: with SSE2, 16 places at a time are tested for its first and last
 * letter, two compares, and only the rare places with both are compared whole; the last
 * block overlaps the one before it (or starts before `p`). The other keys: find_rare. */
static const char *
find_key(const char *d, const char *p, const char *end, int k)
{
#ifdef VECTOR_WALK
    const char *key = KEYS[k].text;
    Py_ssize_t len = KEYS[k].len;
    if (k == K_CONTENT && end - d >= len + 15) {
        const __m128i first = _mm_set1_epi8(key[1]), last = _mm_set1_epi8(key[len - 2]);
        /* places p .. p + 15, each compared whole up to p + 15 + len: end - p >= len + 15 */
        for (; end - p >= len + 15; p += 16) {
            unsigned int bits = key_places(p, len, first, last);
            if (bits) {
                const char *found = key_in(p, bits, key, len);
                if (found != NULL) {
                    return found;
                }
            }
        }
        if (end - p < len) {
            return NULL;
        }
        const char *at = end - len - 15; /* before p: those places were seen */
        return key_in(at, key_places(at, len, first, last) & ~((1u << (p - at)) - 1u), key,
                      len);
    }
#endif
    (void)d;
    return find_rare(p, end, k);
}

/* _classify._has_value(d, KEYS[k]): some occurrence of the key has a non-null value after it;
 * as in Python, the next occurrence is looked for after the end of the last. */
static int
has_value(const char *d, Py_ssize_t n, int k)
{
    const char *end = d + n, *p = d;
    while ((p = find_key(d, p, end, k)) != NULL) {
        p += KEYS[k].len;
        if (value_after(p, end)) {
            return 1;
        }
    }
    return 0;
}

/* _JSON_TYPE.finditer over the body: 1 when some "type" value is in `names`, 0 when none, -1
 * on an error; `names` NULL: the first value's place in *value and *size (NULL: none) and 0.
 * As the regex does, a "type" key without a matching value is passed by one byte. */
static int
type_value(const char *d, Py_ssize_t n, PyObject *names, const char **value, Py_ssize_t *size)
{
    const char *end = d + n, *p = d;
    *value = NULL;
    while ((p = find_key(d, p, end, K_TYPE)) != NULL) {
        const char *stop, *start;
        int in = type_value_in(p + KEYS[K_TYPE].len, end, names, &stop, &start);
        if (in != 0) {
            return in;
        }
        if (stop == NULL) {
            p += 1;
            continue;
        }
        if (names == NULL) {
            *value = start;
            *size = stop - 1 - start;
            return 0;
        }
        p = stop;
    }
    return 0;
}

/* _classify._has_value(d, b'"usage"'), without the walk (NDJSON on the direct path): memchr
 * for its 'g', rare in JSON, instead of every quote; as in Python, an occurrence is looked
 * for after the end of the last one. */
static int
has_usage(const char *d, Py_ssize_t n)
{
    const char *end = d + n, *p = d + 4, *after = d;
    while (end - p >= 3 && (p = memchr(p, 'g', (size_t)(end - p - 2))) != NULL) {
        if (p - 4 >= after && memcmp(p - 4, "\"usage\"", 7) == 0) {
            after = p + 3;
            if (value_after(after, end)) {
                return 1;
            }
        }
        p++;
    }
    return 0;
}
