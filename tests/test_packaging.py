"""What a plain (not editable) install must carry besides Python files."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_data_files_are_package_data() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    for package, patterns in data.items():
        folder = ROOT / package.replace(".", "/")
        for pattern in patterns:
            assert list(folder.glob(pattern)), f"{package}: {pattern} matches nothing"
    # Every non-Python file inside the package is covered by a pattern.
    for path in (ROOT / "forklab").rglob("*"):
        if path.is_file() and path.suffix not in (".py", ".pyc", ".typed"):
            package = ".".join(path.parent.relative_to(ROOT).parts)
            owners = [p for p, patterns in data.items() for pattern in patterns
                      if package.startswith(p) and path.match(str(ROOT / p.replace(".", "/") / pattern))]  # fmt: skip
            assert owners, f"{path.relative_to(ROOT)} would be left out of an install"
