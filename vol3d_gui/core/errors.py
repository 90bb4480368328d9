"""The typed errors a user can cause. The UI shows their message in a dialog and keeps running."""


class Vol3dError(Exception):
    """Base of every error a user can cause (bad file, wrong model, no labels)."""


class VolumeReadError(Vol3dError):
    """A volume could not be read. The message names the file and the reason."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # comes back whole from a worker process (core.readers.dicom.decode)
        return type(self), (self.path, self.reason)
