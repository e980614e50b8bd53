"""Runs in the crime center: fleet service, HTTP API, supervised broker."""
