"""OpenTelemetry export: the observer (spans, instruments) and the deferred stream histograms."""
