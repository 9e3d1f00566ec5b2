/* The classifiers, _classify.is_critical and is_sse_content in C, over the walk's keys or the
 * one-at-a-time lookups. A part of _speedups.c, included in order: one translation unit, so
 * they inline into classify.
 */

/* -- the classifiers -------------------------------------------------------------------------- */

/* _classify.is_critical, given the keys of the walk. */
static int
is_critical(const char *d, Py_ssize_t n, PyObject *names, int openai_chat, const Keys *keys,
            const FirstName *first)
{
    int found = event_name_in(d, n, names, first);
    if (found != 0) {
        return found;
    }
    if (keys->found[K_TYPE] || keys->done) {
        return 1;
    }
    return openai_chat && (keys->found[K_FINISH] || keys->found[K_USAGE]);
}

/* _classify.is_sse_content; `content` NULL: any name counts. `keys`: the walk's, NULL: each
 * key is looked for when asked. */
static int
is_sse_content(const char *d, Py_ssize_t n, PyObject *metadata, PyObject *content,
               int openai_chat, const Keys *keys, const FirstName *first)
{
    const char *end = d + n;
    const char *data = find(d, n, "data:", 5);
    if (data == NULL) {
        return 0;
    }
    if (first->name != NULL) {
        int in = stripped_in(first->name, first->stop, metadata);
        if (in != 0) {
            return in < 0 ? -1 : 0;
        }
    }
    if (content != NULL) {
        int in;
        if (first->name != NULL) {
            in = stripped_in(first->name, first->stop, content);
        }
        else {
            const char *value = keys != NULL ? keys->type_at : NULL;
            Py_ssize_t size = keys != NULL ? keys->type_len : 0;
            if (keys == NULL && type_value(d, n, NULL, &value, &size) < 0) {
                return -1;
            }
            if (value == NULL) {
                return 0;
            }
            in = name_in(content, value, size);
        }
        if (in <= 0) {
            return in;
        }
    }
    const char *start = data + 5, *stop = end;
    while (start < stop && is_space(*start)) {
        start++;
    }
    while (stop > start && is_space(stop[-1])) {
        stop--;
    }
    if (stop - start == 6 && memcmp(start, "[DONE]", 6) == 0) {
        return 0;
    }
    if (keys != NULL) {
        if (openai_chat && keys->found[K_CHAT]) {
            return keys->found[K_CONTENT] || keys->found[K_TOOLS];
        }
    }
    else if (openai_chat && find_key(d, d, end, K_CHAT) != NULL) {
        return has_value(d, n, K_CONTENT) || has_value(d, n, K_TOOLS);
    }
    return stop > start;
}
