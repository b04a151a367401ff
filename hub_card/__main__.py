"""python -m hub_card card|push|space: write model cards, push trained variants and the demo Space to the Hub.

The token comes from HF_TOKEN or `hf auth login`; --dry-run needs none and uploads nothing.
"""
import argparse
import sys
import tempfile
from pathlib import Path

from huggingface_hub.errors import HfHubHTTPError

from charrnn import ModelFileError

from .card import CARD_NAME
from .curve import CURVE_NAME
from .push import model_commit
from .space import space_commit
from .upload import Commit, HubCardError, require_token
from .write import write_card


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m hub_card", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    card = sub.add_parser("card", help="(re)write a trained folder's README.md model card and training curve")
    card.add_argument("--model", required=True, help="folder made by python -m training (with metrics.json)")
    card.add_argument("--repo-id", help="the repo the card's snippet loads (default: the folder)")

    push = sub.add_parser("push", help="write the card for the repo, then upload the folder as one model repo")
    push.add_argument("--model", required=True, help="folder made by python -m training")
    push.add_argument("--repo-id", required=True, help="OWNER/NAME, e.g. you/charrnn-jaychou-lstm")
    push.add_argument("--private", action="store_true", help="create the repo private (an existing repo keeps its setting)")
    push.add_argument("--revision", default="main", help="branch to commit to (created when missing)")
    push.add_argument("--dry-run", action="store_true", help="list the files and the commit, upload nothing")
    push.add_argument("--wheel", help="the charrnn wheel to upload with it (default: built from this checkout)")

    space = sub.add_parser("space", help="upload the Gradio demo as a Space that loads the given model repos")
    space.add_argument("--repo-id", required=True, help="OWNER/NAME of the Space, e.g. you/charrnn-lyrics")
    space.add_argument("--models", required=True, help="comma-separated model repo ids the app offers")
    space.add_argument("--private", action="store_true", help="create the Space private (an existing one keeps its setting)")
    space.add_argument("--dry-run", action="store_true", help="list the files and the commit, upload nothing")
    space.add_argument("--out", help="stage exactly what would be uploaded into this folder, upload nothing")
    space.add_argument("--wheel", help="the charrnn wheel the Space installs (default: built from this checkout)")
    return p


def publish(commit: Commit, dry_run: bool) -> None:
    token = None if dry_run else require_token()
    print(("dry run, would commit to " if dry_run else "committing to ") + commit.describe())
    if token:
        print(f"done: {commit.upload(token)}")


def run(args) -> None:
    if args.command == "card":
        write_card(args.model, args.repo_id)
        print(f"wrote {Path(args.model) / CARD_NAME} and {Path(args.model) / CURVE_NAME}")
    elif args.command == "push":
        publish(model_commit(args.model, args.repo_id, args.revision, args.private, args.wheel), args.dry_run)
    else:
        models = [m.strip() for m in args.models.split(",") if m.strip()]
        if args.out:
            commit = space_commit(args.repo_id, models, empty_folder(Path(args.out)), args.private, args.wheel)
            print(f"staged in {args.out}: " + commit.describe())
            return
        with tempfile.TemporaryDirectory() as staging:
            publish(space_commit(args.repo_id, models, Path(staging), args.private, args.wheel), args.dry_run)


def empty_folder(path: Path) -> Path:
    """path, made if missing; an existing folder with files in it is refused (nothing of the user's is overwritten)."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise HubCardError(f"{path} is not an empty folder: give --out a new or empty one")
    path.mkdir(parents=True, exist_ok=True)
    return path


def main(argv=None) -> int:
    try:
        run(parser().parse_args(argv))
    except (HubCardError, ModelFileError, HfHubHTTPError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
