"""Explain and compress trained jaxdl models (`xai.explain`, `xai.compress`)."""
