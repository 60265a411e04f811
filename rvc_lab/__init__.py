"""rvc_lab: research and validation workbench for RVC voice conversion."""
__version__ = "0.1.0"
