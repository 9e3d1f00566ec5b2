"""The shipped Grafana dashboards, Grafana provisioning and Prometheus config, for users.

The files live in the repository's ``grafana/`` folder; the wheel carries them as
``streamboost/_grafana`` (hatch ``force-include``). ``export_dashboards`` copies them out so a
user can mount them into a stock Grafana and Prometheus.
"""

from __future__ import annotations

import shutil
from pathlib import Path

# Relative paths of the shipped files, in the same layout under the source and the export.
SHIPPED_FILES: tuple[str, ...] = (
    "dashboards/streamboost-overview.json",
    "dashboards/streamboost-cache-and-writes.json",
    "provisioning/datasources/streamboost.yaml",
    "provisioning/dashboards/streamboost.yaml",
    "prometheus/prometheus.yml",
    "prometheus/alerts.yml",
)


def grafana_source_dir() -> Path:
    """The folder holding the shipped files: in the installed package, else the repository's."""
    packaged = Path(__file__).resolve().parents[1] / "_grafana"
    if packaged.is_dir():
        return packaged
    # Editable installs import from src/streamboost/_cli, three levels below the repository root.
    repository = Path(__file__).resolve().parents[3] / "grafana"
    if repository.is_dir():
        return repository
    raise FileNotFoundError(
        f"the Grafana files are missing: neither {packaged} nor {repository} exists; "
        "reinstall streamboost from its wheel"
    )


def export_dashboards(dest: str | Path, *, overwrite: bool = False) -> list[Path]:
    """Write the dashboards, Grafana provisioning and Prometheus config into ``dest``.

    Creates ``dest/dashboards/*.json``, ``dest/provisioning/{datasources,dashboards}/*.yaml``
    and ``dest/prometheus/{prometheus,alerts}.yml`` and returns the written paths. An existing
    file is an error unless ``overwrite=True``; nothing is written in that case.
    """
    source = grafana_source_dir()
    target = Path(dest)
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(f"dest={str(target)!r} is a file; give a directory path")
    if not overwrite:
        existing = [str(target / name) for name in SHIPPED_FILES if (target / name).exists()]
        if existing:
            raise FileExistsError(
                f"{', '.join(existing)} already exist; pass overwrite=True "
                "(streamboost dashboards export --force) or choose an empty directory"
            )
    written: list[Path] = []
    for name in SHIPPED_FILES:
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, path)
        written.append(path)
    return written
