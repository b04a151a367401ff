"""One commit to the Hub: the listed files of a folder to one repo, or a dry run that lists them."""
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import HfApi, constants, get_token
from huggingface_hub.errors import HfHubHTTPError, HFValidationError
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

    def upload(self, token: str, endpoint: str | None = None) -> str:
        """Create the repo (and branch) if needed, commit the files; returns the commit's URL. endpoint: the Hub's
        (default: HF_ENDPOINT's)."""
        api = HfApi(token=token, endpoint=endpoint)
        self.create_repo(api)
        if self.revision != constants.DEFAULT_REVISION:
            api.create_branch(self.repo_id, branch=self.revision, repo_type=self.repo_type, exist_ok=True)
        info = api.upload_folder(folder_path=self.folder, repo_id=self.repo_id, repo_type=self.repo_type,
                                 revision=self.revision, commit_message=self.message, allow_patterns=self.files)
        return info.commit_url

    def create_repo(self, api: HfApi) -> None:
        """The repo, created if new. As create_repo's exist_ok, a refusal is passed over where the repo exists (409:
        the Hub's "already created"; 401, 402, 403: a token that may write to it but not create repos), but only
        where this very repo exists: exist_ok passes over every 409, so a name held by a repo of another type would
        fail later, at the commit, as a repo not found."""
        try:
            api.create_repo(self.repo_id, repo_type=self.repo_type, private=self.private or None,
                            space_sdk="gradio" if self.repo_type == "space" else None)
        except HfHubHTTPError as e:
            if not (e.response is not None and e.response.status_code in (401, 402, 403, 409) and self.exists(api)):
                raise

    def exists(self, api: HfApi) -> bool:
        try:
            return api.repo_exists(self.repo_id, repo_type=self.repo_type)
        except HfHubHTTPError:
            return False
