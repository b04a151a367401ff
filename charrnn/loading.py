"""Safe loading: files from a local folder or the Hub cache, weights only through safetensors, clear errors."""
import inspect
import json
import os

import safetensors.torch
from huggingface_hub import constants, hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from .cells import CELLS
from .counts import BIGRAM_NAME, Bigram
from .errors import ModelFileError
from .lexicon import LEXICON_NAME, Lexicon

WEIGHTS_NAME = constants.SAFETENSORS_SINGLE_FILE
CONFIG_NAME = constants.CONFIG_NAME
REQUIRED_FILES = (CONFIG_NAME, WEIGHTS_NAME)


def looks_local(model_id: str) -> bool:
    """A path the user meant as a folder here, not a Hub repo id (models/x is a folder when models/ exists)."""
    first = model_id.split("/")[0]
    return model_id.startswith(("/", ".", "~")) or os.path.isdir(model_id) or (first != model_id and os.path.isdir(first))


def check_source(model_id: str, subfolder: str | None = None, **_) -> None:
    if not looks_local(model_id):
        return
    model_id = os.path.join(model_id, subfolder or "")
    if not os.path.isdir(model_id):
        raise ModelFileError(f"no model folder at {model_id}")
    missing = [name for name in REQUIRED_FILES if not os.path.isfile(os.path.join(model_id, name))]
    if missing:
        raise ModelFileError(f"{model_id} is not a complete model folder: {', '.join(missing)} missing")


def in_subfolder(*parts: str | None) -> str:
    """The path of parts joined as the Hub writes it, the missing ones left out."""
    return "/".join(filter(None, parts))


def fetch(model_id: str, filename: str, **hub_kwargs) -> str:
    """The local path of filename (in hub_kwargs' subfolder, if any), from the folder model_id or downloaded through
    the Hub cache."""
    if os.path.isdir(model_id):
        return os.path.join(model_id, hub_kwargs.get("subfolder") or "", filename)
    filename_shown = in_subfolder(hub_kwargs.get("subfolder"), filename)
    try:
        return hf_hub_download(model_id, filename, **hub_kwargs)
    except HFValidationError as e:
        raise ModelFileError(f"{model_id!r} is neither a model folder nor a valid Hub repo id ({e})") from None
    except RepositoryNotFoundError:
        raise ModelFileError(f"no model repo {model_id!r} on the Hub at {constants.ENDPOINT} "
                             "(or it is private and no token gives access)") from None
    except RevisionNotFoundError:
        raise ModelFileError(f"{model_id!r} has no revision {hub_kwargs.get('revision')!r}") from None
    except LocalEntryNotFoundError:
        raise ModelFileError(f"{filename_shown} of {model_id!r} is not in the local cache and the Hub cannot be "
                             "reached (offline?)") from None
    except EntryNotFoundError:
        raise ModelFileError(f"{model_id!r} has no {filename_shown}: it is not a complete charrnn model") from None
    except HfHubHTTPError as e:
        raise ModelFileError(f"downloading {filename_shown} of {model_id!r} failed: {e}") from None


def read_json(source: str, path: str):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(f"{source}: {CONFIG_NAME} is not readable JSON ({e})") from None


def read_config(source: str, path: str, model_class) -> dict:
    """The constructor arguments saved in config.json, checked before any weight is read."""
    config = read_json(source, path)
    if not isinstance(config, dict) or "vocab" not in config:
        raise ModelFileError(f"{source}: {CONFIG_NAME} has no 'vocab'")
    if config.get("cell", "lstm") not in CELLS:
        raise ModelFileError(f"{source}: unknown cell {config['cell']!r} in {CONFIG_NAME} (known: {', '.join(CELLS)})")
    for key in ("embed_size", "hidden_size", "num_layers"):
        if key in config and not (isinstance(config[key], int) and config[key] > 0):
            raise ModelFileError(f"{source}: {key} in {CONFIG_NAME} must be a positive integer, got {config[key]!r}")
    accepted = inspect.signature(model_class.__init__).parameters
    return {k: v for k, v in config.items() if k in accepted and k != "self"}


def load_weights(model, path: str, device="cpu") -> None:
    """Load path into model, strictly: every tensor present, none extra, every shape as config.json says."""
    try:
        state = safetensors.torch.load_file(path, device=str(device))
    except Exception as e:  # safetensors raises its own error types, OSError and others for a damaged file
        raise ModelFileError(f"{path} is not a readable safetensors file: {e}") from None
    expected = model.state_dict()
    problems = [f"missing weight {k}" for k in expected if k not in state]
    problems += [f"unexpected weight {k}" for k in state if k not in expected]
    problems += [f"{k} has shape {tuple(state[k].shape)}, config.json implies {tuple(v.shape)}"
                 for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if problems:
        raise ModelFileError(f"{path} does not match its config.json ({type(model).__name__}, vocabulary of "
                             f"{len(model.vocab)}): " + "; ".join(problems))
    model.to(device).load_state_dict(state, strict=True)


def load_pretrained(model_class, source: str, map_location="cpu", **hub_kwargs):
    """model_class from a folder or Hub repo: config.json checked first, then the weights, strictly."""
    check_source(source, **hub_kwargs)
    where = in_subfolder(source, hub_kwargs.get("subfolder"))  # what messages name
    config = read_config(where, fetch(source, CONFIG_NAME, **hub_kwargs), model_class)
    try:
        model = model_class(**config)
    except (TypeError, ValueError) as e:
        raise ModelFileError(f"{where}: {CONFIG_NAME} does not describe a {model_class.__name__}: {e}") from None
    load_weights(model, fetch(source, WEIGHTS_NAME, **hub_kwargs), map_location)
    return model.eval()


def load_counts(source: str, **hub_kwargs):
    """The count model a character model mixes in (config.json's count_weight says it has one)."""
    try:
        return Bigram.load(fetch(source, BIGRAM_NAME, **hub_kwargs))
    except ValueError as e:
        raise ModelFileError(f"{source}: its config.json mixes in a count model, but {BIGRAM_NAME} is not usable: {e}") from None


def load_lexicon(source: str, **hub_kwargs):
    """The lexicon a character model mixes in (config.json's lexicon_weight says it has one)."""
    try:
        return Lexicon.load(fetch(source, LEXICON_NAME, **hub_kwargs))
    except ValueError as e:
        raise ModelFileError(f"{source}: its config.json mixes in a lexicon, but {LEXICON_NAME} is not usable: {e}") from None


def is_next_line(source: str, **hub_kwargs) -> bool:
    """Whether source holds a NextLine model (its config names a context mode) rather than a CharRNN."""
    check_source(source)
    config = read_json(source, fetch(source, CONFIG_NAME, **hub_kwargs))
    return isinstance(config, dict) and "context" in config
