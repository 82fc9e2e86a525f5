"""Third-party front-end files, served from the installed packages that ship them.

Nothing third-party is copied into the repository: htmx comes from the
``django-js-lib-htmx`` wheel (only its static files; nothing imports Django) and
Bootstrap from ``bootstrap-flask``. Upgrading a package upgrades the file.
"""

from __future__ import annotations

from importlib import metadata
from importlib.resources import files
from pathlib import Path

# name -> (distribution, package, folder inside the package)
VENDOR_PACKAGES = {
    "htmx": ("django-js-lib-htmx", "js_lib_htmx", "static/htmx"),
    "bootstrap": ("bootstrap-flask", "flask_bootstrap", "static/bootstrap5"),
}


def vendor_root(name: str) -> Path | None:
    """The folder a vendor name is served from, or None if unknown."""
    entry = VENDOR_PACKAGES.get(name)
    if entry is None:
        return None
    return Path(str(files(entry[1]))) / entry[2]


def vendor_version(name: str) -> str:
    """The installed version, used to bust the one-year browser cache on upgrade."""
    return metadata.version(VENDOR_PACKAGES[name][0])
