"""Compress trained jaxdl models: pruning, channel pruning, qwix quantization, compressed checkpoints."""
