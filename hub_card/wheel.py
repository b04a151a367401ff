"""The library's wheel, built from this checkout, which model repos and the Space carry: the Hub alone is enough to
install charrnn (`pip install <endpoint>/<repo>/resolve/main/<wheel>`), as spaCy's model repos do."""
import shutil
import subprocess
import sys
from pathlib import Path

from .upload import HubCardError

ROOT = Path(__file__).resolve().parent.parent


def build_wheel(dest: Path) -> Path:
    """The wheel of the checkout this package runs from, built into dest (an empty folder)."""
    if not (ROOT / "pyproject.toml").is_file():
        raise HubCardError(f"no pyproject.toml at {ROOT}: push from a checkout of charrnn, or give --wheel FILE")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(dest), str(ROOT)], capture_output=True, text=True)
    wheels = sorted(dest.glob("charrnn-*.whl"))
    if done.returncode != 0 or len(wheels) != 1:
        raise HubCardError(f"could not build the charrnn wheel: {done.stderr.strip()[-2000:]}")
    return wheels[0]


def place_wheel(folder: Path, wheel: str | Path | None = None) -> str:
    """The wheel given (else one built from the checkout) copied into folder, in place of any older one; its name."""
    for old in folder.glob("charrnn-*.whl"):
        old.unlink()
    if wheel is None:
        return build_wheel(folder).name
    wheel = Path(wheel)
    if not (wheel.is_file() and wheel.name.startswith("charrnn-") and wheel.suffix == ".whl"):
        raise HubCardError(f"{wheel} is not a charrnn wheel (charrnn-<version>-py3-none-any.whl)")
    shutil.copy2(wheel, folder / wheel.name)
    return wheel.name

