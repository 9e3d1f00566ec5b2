/* The JSON keys the classifiers look at (KEYS, their first bytes, the Keys a walk fills) and the
 * value tests after a key. A part of _speedups.c, included in order: one translation unit, so
 * these small functions inline into the walk and the classifiers.
 */

/* -- the JSON keys ---------------------------------------------------------------------------- */

/* The JSON keys the classifiers look at (_classify._has_value, _JSON_TYPE): with critical
 * events asked, found together in one walk (scan_keys); without, each looked for on its own
 * when a classifier asks (find_key). */
enum { K_TYPE, K_FINISH, K_USAGE, K_CONTENT, K_TOOLS, K_CHAT, K_COUNT };
static const struct {
    const char *text;
    Py_ssize_t len;
} KEYS[K_COUNT] = {
    {"\"type\"", 6},    {"\"finish_reason\"", 15}, {"\"usage\"", 7},
    {"\"content\"", 9}, {"\"tool_calls\"", 12},    {"\"chat.completion.chunk\"", 23},
};

/* Where each key has a byte that is rare in JSON, for find_rare's memchr: 'y', '_', 'g', the
 * 'c' of "content" (none is rare), '_', '.'. */
static const Py_ssize_t KEY_RARE[K_COUNT] = {2, 7, 4, 1, 5, 5};

/* For each byte, the keys whose text starts with a quote and that byte (bit k: KEYS[k]); most
 * quotes in a chunk open a key or value no classifier asks about and cost one lookup. */
static unsigned char KEY_FIRST[256];
static unsigned char VALUE_STOP[256]; /* the bytes a "type" value ends at: '"', '\\', NUL */
static uint32_t key_word[K_COUNT]; /* each key's first four bytes (every key has 6 or more) */

/* The distinct second bytes of KEYS (the vector walk compares 16 bytes with each at once);
 * more than KEY_LETTERS of them: the vector walk is off (key_letters 0). */
#define KEY_LETTERS 4
static char key_letter[KEY_LETTERS];
static int key_letters;

static void
init_key_first(void)
{
    VALUE_STOP['"'] = VALUE_STOP['\\'] = VALUE_STOP[0] = 1;
    for (int k = 0; k < K_COUNT; k++) {
        KEY_FIRST[(unsigned char)KEYS[k].text[1]] |= (unsigned char)(1u << k);
        memcpy(&key_word[k], KEYS[k].text, 4);
    }
    for (int c = 0; c < 256; c++) {
        if (KEY_FIRST[c] == 0) {
            continue;
        }
        if (key_letters == KEY_LETTERS) {
            key_letters = 0;
            return;
        }
        key_letter[key_letters++] = (char)c;
    }
    for (int i = key_letters; i < KEY_LETTERS; i++) {
        key_letter[i] = key_letter[0]; /* repeats compare the same byte again */
    }
}

typedef struct {
    char found[K_COUNT]; /* K_CHAT: present; K_TYPE: a value in the names; others: _has_value */
    const char *type_at; /* the first "type" value (_JSON_TYPE.search), NULL when none */
    Py_ssize_t type_len;
    /* What the format checks and the classifiers ask of the bytes, seen in the same walk: */
    Py_ssize_t first_lf;   /* the first LF, -1: none */
    Py_ssize_t first_pair; /* the first "\n\n" (a blank line, without CRs), -1: none */
    char any_cr;           /* some CR */
    char done;             /* "[DONE]" somewhere */
} Keys;

/* _NOT_NULL_AFTER at `q`: \s*:\s*+ and not null, "", {} or []. */
static int
value_after(const char *q, const char *end)
{
    while (q < end && is_space(*q)) {
        q++;
    }
    if (q >= end || *q != ':') {
        return 0;
    }
    for (q++; q < end && is_space(*q); q++) {
    }
    Py_ssize_t rest = end - q;
    return !((rest >= 4 && memcmp(q, "null", 4) == 0) ||
             (rest >= 2 && (memcmp(q, "\"\"", 2) == 0 || memcmp(q, "{}", 2) == 0 ||
                            memcmp(q, "[]", 2) == 0)));
}

/* _JSON_TYPE's value after a "type" key at `q`: its end (past the closing quote) in *stop and
 * 1 when it is in `names` (NULL: not asked), 0 when not (*stop NULL when the regex does not
 * match), -1. *value is where the value starts. */
static int
type_value_in(const char *q, const char *end, PyObject *names, const char **stop,
              const char **value)
{
    *stop = NULL;
    while (q < end && is_space(*q)) {
        q++;
    }
    if (q >= end || *q != ':') {
        return 0;
    }
    for (q++; q < end && is_space(*q); q++) {
    }
    if (q >= end || *q != '"') {
        return 0;
    }
    const char *start = ++q;
    /* To the value's end, a quote or a backslash. `end` is a bytes object's end, where CPython
     * keeps a NUL: the table stops there too, so no bound test per byte (a NUL before it is
     * passed, as the regex does). */
    for (;;) {
        while (!VALUE_STOP[(unsigned char)*q]) {
            q++;
        }
        if (*q != '\0' || q >= end) {
            break;
        }
        q++;
    }
    if (q >= end || *q != '"') {
        return 0;
    }
    *stop = q + 1;
    *value = start;
    if (names == NULL) {
        return 0;
    }
    return name_in(names, start, q - start);
}
