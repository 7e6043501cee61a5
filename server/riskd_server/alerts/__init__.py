"""Alerts: values (model), dedupe, the indexed history ring, sliding-window statistics, the fan-out
to subscribers, the pipeline that turns engine events into alerts, and the email digests."""
