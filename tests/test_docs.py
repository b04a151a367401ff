"""docs/api.md against the app itself: every endpoint, each argument with its default, and each limit as
charrnn.limits defines it; the README stays a newcomer's page."""
import re
from pathlib import Path

import pytest

import app
from charrnn import limits
from engine.training import Trained

ROOT = Path(__file__).resolve().parent.parent
API = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
LIMITS = {"length": str(limits.LENGTH), "temperature": str(limits.TEMPERATURE), "top_p": str(limits.TOP_P),
          "seed": str(limits.SEED), "lines": f"{limits.shown(limits.LINES.low)} (no limit) to {limits.LINES.high}",
          "repetition_penalty": f"1 (off) to {limits.REPETITION_PENALTY.high:g}",
          "no_repeat_ngram": f"0 (off) to {limits.NO_REPEAT_NGRAM.high}", "n": str(limits.CANDIDATES),
          "acrostic": f"up to {limits.ACROSTIC}", "rhyme": f"up to {limits.RHYME}", "prefix": f"{limits.TEXT:,}",
          "start": f"{limits.TEXT:,}", "text": f"{limits.TEXT:,}", "context": f"{limits.TEXT:,}",
          "line": f"up to {limits.LINE}", "minutes": str(limits.TRAINING_MINUTES),
          "line_lengths": f"{limits.LINE_LENGTH} each, at most {limits.PATTERN}", "scheme": f"up to {limits.SCHEME}",
          "keywords": f"up to {limits.KEYWORDS} words ({limits.KEYWORD} characters each)", "lyric": f"{limits.TEXT:,}"}

ENDPOINT_LIMITS = {("/train", "text"): f"{limits.TRAINING_TEXT.low:,} to {limits.PASTED_TRAINING_TEXT:,}",
                   ("/train", "start"): "from scratch", ("/train", "name"): f"up to {limits.NAME}",
                   ("/rewrite", "n"): str(limits.REWRITES)}


def shown_default(parameter: dict) -> str:
    if not parameter["parameter_has_default"]:
        return "required"
    value = parameter["parameter_default"]
    return f'`"{value}"`' if isinstance(value, str) else str(value)


def section(endpoint: str) -> str:
    found = re.search(rf"### `{re.escape(endpoint)}`.*?(?=\n### |\n## |\Z)", API, re.S)
    assert found, f"docs/api.md has no section for {endpoint}"
    return found.group(0)


@pytest.fixture(scope="module")
def endpoints(tmp_path_factory) -> dict:
    """Every endpoint, /train (callable, not listed by gradio) too."""
    demo = app.build_demo({}, {}, trained=Trained(tmp_path_factory.mktemp("trained")))
    named = demo.get_api_info(all_endpoints=True)["named_endpoints"]
    return {name: info for name, info in named.items() if info["api_visibility"] == "public" or name == "/train"}


def test_every_endpoint_argument_default_and_limit_is_documented(endpoints):
    rows = {}
    for endpoint, info in endpoints.items():
        text = section(endpoint)
        for parameter in info["parameters"]:
            name = parameter["parameter_name"]
            row = re.search(rf"^\| `{name}` \| (.*?) \| (.*?) \|$", text, re.M) or rows.get(name)
            assert row, f"{endpoint}: no row for {name}"
            rows.setdefault(name, row)
            assert row.group(1) == shown_default(parameter), (endpoint, name)
            expected = ENDPOINT_LIMITS.get((endpoint, name), LIMITS.get(name))
            if expected:
                assert expected in row.group(2), (endpoint, name, row.group(2))


def test_the_readme_is_a_newcomers_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 150
    for needed in ("make demo", "make test", "make test-fast", "pip install", "docs/api.md", "docs/results.md",
                   "docs/design.md", "CHARRNN_MODELS_FILE", "CHARRNN_TRAINING", "CHARRNN_DECODING", "CHARRNN_DECODERS",
                   "CHARRNN_DATA", "python -m pytest", "3.10"):
        assert needed in readme, needed
