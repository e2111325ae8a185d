"""Batch pipeline files: one ingest and a list of selections, validated before anything runs."""
