"""MOS Studio: meticulous object segmentation for high-resolution photos."""
__version__ = "0.1.0"
