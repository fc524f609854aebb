"""Dagster: the assets that turn landed raw events into processed events and issues."""
