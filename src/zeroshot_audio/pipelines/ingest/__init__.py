"""``ingest``: AudioSet metadata as published -> validated clip and class tables."""
