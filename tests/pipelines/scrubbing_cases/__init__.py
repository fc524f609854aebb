"""Data for the scrubbing tests: realistic events, with and without personal data."""
