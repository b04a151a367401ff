"""One commit to the Hub: the listed files of a folder to one repo, or a dry run that lists them."""
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import HfApi, constants, get_token
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id


class HubCardError(ValueError):
    """A request that cannot be carried out (bad repo id, no token): the message says what to do."""


def check_repo_id(repo_id: str) -> str:
    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise HubCardError(f"{repo_id!r} is not a valid Hub repo id: {e}") from None
    if repo_id.count("/") != 1:
        raise HubCardError(f"{repo_id!r} is not a valid Hub repo id: write it as OWNER/NAME")
    return repo_id


def require_token() -> str:
    """The token of HF_TOKEN or `hf auth login`; it is passed on, never shown."""
    if constants.HF_HUB_OFFLINE:
        raise HubCardError("HF_HUB_OFFLINE is set: unset it to upload")
    token = get_token()
    if not token:
        raise HubCardError("no Hugging Face token: set HF_TOKEN or run `hf auth login` (a token with write access)")
    return token


@dataclass
class Commit:
    folder: Path
    files: list[str]  # paths relative to folder, as they land in the repo
    repo_id: str
    repo_type: str  # "model" or "space"
    message: str
    revision: str = constants.DEFAULT_REVISION
    private: bool = False

    def describe(self) -> str:
        visibility = f"created {'private' if self.private else 'public'} if new"
        lines = [f"{self.repo_type} repo: {self.repo_id} ({visibility})", f"revision: {self.revision}",
                 f"commit message: {self.message}", f"files ({len(self.files)}):"]
        return "\n".join(lines + [f"  {name}  {(self.folder / name).stat().st_size:,} bytes" for name in self.files])

    def upload(self, token: str) -> str:
        """Create the repo (and branch) if needed, commit the files; returns the commit's URL."""
        api = HfApi(token=token)
        api.create_repo(self.repo_id, repo_type=self.repo_type, private=self.private or None, exist_ok=True,
                        space_sdk="gradio" if self.repo_type == "space" else None)
        if self.revision != constants.DEFAULT_REVISION:
            api.create_branch(self.repo_id, branch=self.revision, repo_type=self.repo_type, exist_ok=True)
        info = api.upload_folder(folder_path=self.folder, repo_id=self.repo_id, repo_type=self.repo_type,
                                 revision=self.revision, commit_message=self.message, allow_patterns=self.files)
        return info.commit_url

