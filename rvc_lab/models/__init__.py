"""Torch modules only (no file I/O): HuBERT content encoder, RVC synthesizers, RMVPE."""
