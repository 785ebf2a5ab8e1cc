"""GenBench: benchmark generated, retrieved and original training images for recognition."""

__version__ = "0.1.0"
