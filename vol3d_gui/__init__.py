"""vol3d: review 3-D medical volumes with a Conv3D classifier beside the reader."""

__version__ = "0.1.0"
