"""The distribution ships every package of the source tree (an unlisted one is missing from a wheel)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _source_packages(config: dict) -> set[str]:
    """Dotted names of the directories under each package-dir root holding Python or SQL files."""
    found = set()
    for name, folder in config["package-dir"].items():
        base = ROOT / folder
        for path in [base, *(p for p in base.rglob("*") if p.is_dir())]:
            if path.name == "__pycache__" or not (any(path.glob("*.py")) or any(path.glob("*.sql"))):
                continue
            rel = path.relative_to(base)
            found.add(".".join([name, *rel.parts]))
    return found


def test_every_source_package_is_listed_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert set(config["packages"]) == _source_packages(config)
