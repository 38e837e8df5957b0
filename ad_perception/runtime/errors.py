"""The runtime's error types: one for configuration (what to change before anything runs),
one for inputs handed to a loaded core (the caller's data is wrong, the model is fine)."""

from __future__ import annotations


class RuntimeConfigError(ValueError):
    """A model cannot be loaded as asked: unknown or missing backend, device without
    hardware, missing/corrupt/truncated file, hash mismatch. The message says what to fix."""


class RuntimeInputError(ValueError):
    """An input tensor does not fit the loaded core (wrong shape or dtype)."""
