"""Explain and compress trained jaxdl models."""
