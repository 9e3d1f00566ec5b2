"""OpenTelemetry export: the observer, the stream histograms, span timing, and the one module
that touches the tracer provider (``_tracing``)."""
