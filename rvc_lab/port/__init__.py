"""Ports of the chain to other languages, checked stage by stage against rvc_lab (``rvc-lab port-check``)."""
