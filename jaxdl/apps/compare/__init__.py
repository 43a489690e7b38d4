"""Experiment comparison: the table of every run of sweeps or run directories (`jaxdl-compare`)."""
