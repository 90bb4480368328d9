"""One module per format; each returns a RAS+ Volume or raises VolumeReadError."""
