"""`make demo` in a fresh copy of the project: the page opens before the last variant is trained, and each variant
joins it as it finishes. Real make, real training (tiny settings, small corpora), a real server on loopback."""
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from gradio_client import Client

from conftest import cut
from test_app import free_port

pytestmark = [pytest.mark.slow, pytest.mark.server]

ROOT = Path(__file__).resolve().parent.parent
TINY = "--max-minutes 0.05 --epochs 1 --embed-size 16 --hidden-size 32 --batch-size 16 --num-steps 16 --no-progress"
VARIANTS = ["jaychou-lstm", "jaychou-gru", "jaychou-rnn", "jaychou-rnn-scratch", "timemachine-lstm",
            "jaychou-next-line"]


def fresh_copy(to: Path) -> Path:
    """The working tree as a clone would have it (tracked and new files, nothing ignored), with this venv."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (to / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, to / name)
    (to / ".venv").symlink_to(ROOT / ".venv")  # `make setup` is what `make test` has just done:
    installed = (ROOT / ".venv" / ".installed").stat().st_mtime  # pyproject.toml must not look newer to make
    os.utime(to / "pyproject.toml", (installed - 1, installed - 1))
    return to


def listed(client: Client) -> list[str]:
    return [m["name"] for m in client.predict(api_name="/models")]


def test_make_demo_opens_the_page_before_the_last_variant_is_trained(tmp_path):
    project, data = fresh_copy(tmp_path / "charrnn"), tmp_path / "data"
    data.mkdir()
    (data / "jaychou_lyrics.txt").write_text(cut("jaychou_lyrics.txt", 5000), encoding="utf-8")
    (data / "timemachine.txt").write_text(cut("timemachine.txt", 5000), encoding="utf-8")
    port, log = free_port(), open(tmp_path / "demo.log", "w")
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1", "HF_HUB_OFFLINE": "1"}
    demo = subprocess.Popen(["make", "demo", f"DATA={data}", f"TRAIN_FLAGS={TINY}"], cwd=project, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        end, client, first = time.monotonic() + 240, None, None
        while first is None:
            assert time.monotonic() < end and demo.poll() is None, (tmp_path / "demo.log").read_text()[-3000:]
            time.sleep(0.5)
            try:
                client = client or Client(f"http://127.0.0.1:{port}/", verbose=False)
                first = listed(client) or None
            except Exception:  # not up yet
                continue
        trained = [v for v in VARIANTS if (project / "models" / v / "model.safetensors").is_file()]
        assert first == ["Jay Chou lyrics · LSTM"] and len(trained) < len(VARIANTS), (first, trained)
        assert len(client.predict("Jay Chou lyrics · LSTM", "分开", 20, api_name="/generate")) == 20
        while len(listed(client)) < 5:
            assert time.monotonic() < end and demo.poll() is None, (tmp_path / "demo.log").read_text()[-3000:]
            time.sleep(1)
        assert len(client.predict("Jay Chou lyrics · RNN (from scratch)", "分开", 20, api_name="/generate")) == 20
        while not (project / "models" / "jaychou-next-line" / "model.safetensors").is_file():
            assert time.monotonic() < end, "the next-line model never arrived"
            time.sleep(1)
        time.sleep(3)  # the app looks for arrivals every 2 s
        assert "\n" not in client.predict("窗外的麻雀", 0.8, 1, api_name="/next_line")
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGTERM)
        demo.wait(30)
