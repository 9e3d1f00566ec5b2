/* The stream clock read from C. A part of _speedups.c, included before sender.h.
 *
 * Every direct chunk reads the middleware's clock once. When that clock is time.perf_counter
 * itself (the default), calling it through the interpreter costs more than the reading:
 * clock_gettime is called here instead, with perf_counter's own conversion, so the value is
 * the one perf_counter would have returned. Any other clock (a test's fake) is called.
 */
#include <time.h>

/* time.perf_counter, fetched at import (a strong reference); NULL where it is unusable. */
static PyObject *perf_counter_func;

static int
clock_init(void)
{
#if defined(__linux__) && defined(CLOCK_MONOTONIC)
    PyObject *time_module = PyImport_ImportModule("time");
    if (time_module == NULL) {
        return -1;
    }
    perf_counter_func = PyObject_GetAttrString(time_module, "perf_counter");
    Py_DECREF(time_module);
    return perf_counter_func == NULL ? -1 : 0;
#else
    return 0;
#endif
}

/* The clock's reading as a new float, or NULL with an exception set. */
CHUNK_INLINE PyObject *
clock_read(PyObject *clock)
{
#if defined(__linux__) && defined(CLOCK_MONOTONIC)
    struct timespec ts;
    if (clock == perf_counter_func && clock_gettime(CLOCK_MONOTONIC, &ts) == 0) {
        /* CPython 3.11's _PyTime_AsSecondsDouble on the nanoseconds perf_counter reads. */
        int64_t ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
        double seconds = ns % 1000000000 == 0 ? (double)(ns / 1000000000) : (double)ns / 1e9;
        return PyFloat_FromDouble(seconds);
    }
#endif
    return PyObject_CallNoArgs(clock);
}
