"""Test isolation: every Python test run gets its own Hearth data directory.

Without this, `hearth run` in a test would write conversations into the vault of the
person running the tests (and fail on a vault that has a passphrase). HEARTH_MODELS keeps
pointing at the real model directory (the fetched models), resolved before HEARTH_HOME
changes; tests that need a particular HEARTH_HOME still set their own.
"""
import os
import tempfile
from pathlib import Path

_models = os.environ.get("HEARTH_MODELS")
if not _models:
    if os.environ.get("HEARTH_HOME"):
        _models = str(Path(os.environ["HEARTH_HOME"]) / "models")
    else:
        data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        _models = str(Path(data) / "hearth" / "models")
os.environ["HEARTH_MODELS"] = _models
os.environ["HEARTH_HOME"] = tempfile.mkdtemp(prefix="hearth-test-home-")
# The person's own config file (require_signed, default_model, [serve] ...) must not change
# what the tests see: point at a file that does not exist (every default).
os.environ["HEARTH_CONFIG"] = os.path.join(os.environ["HEARTH_HOME"], "no-config.toml")
