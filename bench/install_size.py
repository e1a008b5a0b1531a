"""Installed size per extra: the built wheel installed into fresh venvs (`[agent]` and `[all]`).

    .venv/bin/python bench/install_size.py

Prints, per extra, the size of the venv's site-packages (MB, as `du` counts it, without byte
code: pip --no-compile) and the number of distributions; the ratio is agent / all.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*cmd) -> str:
    return subprocess.run([str(c) for c in cmd], check=True, capture_output=True, text=True).stdout


def du_mb(path: Path) -> float:
    return int(run("du", "-sk", path).split()[0]) / 1024


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="install-size-") as tmp:
        tmp = Path(tmp)
        src = tmp / "src"
        src.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(ROOT / name, src / name)
        for name in ("seed", "monitor_agent"):
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "local-hosts"))
        run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp / "dist", src)
        (wheel,) = (tmp / "dist").glob("*.whl")
        sizes = {}
        for extra in ("agent", "all"):
            venv = tmp / extra
            run(sys.executable, "-m", "venv", "--without-pip", venv)
            run(sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "-q", "--no-compile",
                f"{wheel}[{extra}]")  # fmt: skip
            (site,) = (venv / "lib").glob("python3*/site-packages")
            dists = len(list(site.glob("*.dist-info")))
            sizes[extra] = du_mb(site)
            print(f"[{extra}]: {sizes[extra]:.1f} MB site-packages, {dists} distributions")
        print(f"agent / all: {sizes['agent'] / sizes['all']:.2f}")


if __name__ == "__main__":
    main()
