"""Installs the ``da-sources-plugin-fixture`` distribution (the folder beside this file) for tests.

The distribution is packed here as a wheel by hand (a wheel is a zip with a
``.dist-info`` folder): that needs no build backend, no ``wheel`` package and no
network, so the test runs the same on any machine. ``pip`` then installs that
wheel like any third-party package; ``pyproject.toml`` beside this file
describes the same distribution for a manual ``pip install tests/plugin_fixture``.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

FIXTURE_DIR = Path(__file__).resolve().parent
PLUGIN_TYPE = "inline"
DIST = "da_sources_plugin_fixture-0.1.0"
_FILES = {
    "da_plugin_fixture/__init__.py": (FIXTURE_DIR / "da_plugin_fixture" / "__init__.py").read_bytes,
    f"{DIST}.dist-info/METADATA": lambda: (
        b"Metadata-Version: 2.1\nName: da-sources-plugin-fixture\nVersion: 0.1.0\n"
        b"Summary: Test fixture: an 'inline' connector serving files given in its config\n"
    ),
    f"{DIST}.dist-info/WHEEL": lambda: (
        b"Wheel-Version: 1.0\nGenerator: tests.plugin_fixture\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    ),
    f"{DIST}.dist-info/entry_points.txt": lambda: (
        b"[da_sources.connectors]\ninline = da_plugin_fixture:InlineConnector\n"
    ),
}


def build_wheel(folder: Path) -> Path:
    """The fixture as a wheel file in ``folder``."""
    wheel = folder / f"{DIST}-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, read in _FILES.items():
            data = read()
            archive.writestr(name, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{name},sha256={digest},{len(data)}")
        record.append(f"{DIST}.dist-info/RECORD,,")
        archive.writestr(f"{DIST}.dist-info/RECORD", "\n".join(record) + "\n")
    return wheel


def install_plugin(target: Path) -> Path:
    """``pip install`` the fixture into ``target``, a site folder for ``sys.path`` / PYTHONPATH.

    ``--target`` keeps the shared venv unchanged, so the plugin type exists only
    for the tests that put ``target`` on their path.
    """
    with tempfile.TemporaryDirectory(prefix="da-plugin-wheel-") as folder:
        wheel = build_wheel(Path(folder))
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
             "--target", str(target), str(wheel)],
            check=True, capture_output=True, text=True, timeout=300,
        )
    return target
