"""Prefect tasks: thin, retryable wrappers around `imgsearch`'s steps."""
