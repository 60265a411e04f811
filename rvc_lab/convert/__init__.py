"""The conversion chain: shared stage functions and the offline and streaming drivers."""
