-- Trace context (issue 15): the W3C traceparent and tracestate of the
-- context that enqueued the task, NULL when it carried none. An attempt's
-- span continues that trace, and webhook deliveries send it on.
ALTER TABLE taskwheel_tasks ADD COLUMN trace_parent TEXT;
ALTER TABLE taskwheel_tasks ADD COLUMN trace_state TEXT;
