"""A local Hugging Face Hub for tests: olah serving git repos through the Hub's download API, offline.

Layout: ROOT/mirrors/models/<org>/<name> is a git repo whose branch main is what the Hub serves.
"""
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

GIT = ["git", "-c", "user.name=charrnn tests", "-c", "user.email=tests@localhost", "-c", "init.defaultBranch=main"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalHub:
    def __init__(self, root: Path):
        self.root = root
        self.mirrors = root / "mirrors"
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self) -> "LocalHub":
        self.mirrors.mkdir(parents=True, exist_ok=True)
        config = self.root / "olah.toml"
        config.write_text(
            f'[basic]\nhost = "127.0.0.1"\nport = {self.port}\nrepos-path = "{self.root / "cache"}"\n'
            f'mirrors-path = ["{self.mirrors}"]\n\n[accessibility]\noffline = true\n', encoding="utf-8")
        olah = Path(sys.executable).with_name("olah-cli")
        self.process = subprocess.Popen([olah, "-c", config, "--log-path", self.root / "logs"], cwd=self.root,
                                        stdout=subprocess.DEVNULL, stderr=(self.root / "olah.err").open("wb"))
        self.wait_ready()
        return self

    def wait_ready(self, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"olah exited: {(self.root / 'olah.err').read_text(errors='replace')[-2000:]}")
            try:
                urllib.request.urlopen(self.endpoint, timeout=1)
                return
            except urllib.error.HTTPError:
                return  # any HTTP answer means it is serving
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"olah did not start on {self.endpoint} within {seconds} s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def add_model(self, repo_id: str, folder: Path, files: list[str] | None = None, repo_type: str = "model") -> Path:
        """Commit folder's files (all, or those named) as branch main of the repo repo_id (a model, or a space)."""
        repo = self.mirrors / f"{repo_type}s" / repo_id
        shutil.rmtree(repo, ignore_errors=True)
        repo.mkdir(parents=True)
        for name in files or [p.name for p in folder.iterdir() if p.is_file()]:
            (repo / name).parent.mkdir(parents=True, exist_ok=True)  # a fused next-line model's language_model/
            shutil.copy2(folder / name, repo / name)
        for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", f"upload {repo_id}"]):
            subprocess.run([*GIT, *args], cwd=repo, check=True)
        return repo
