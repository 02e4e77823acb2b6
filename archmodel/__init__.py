"""aimc architecture model: chip description, PCM model, golden numerics."""

__version__ = "0.1.0"
