"""Model cards: written with huggingface_hub's ModelCard, parsed back by it, with real samples and a snippet that runs."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cut, tiny_config
from huggingface_hub import ModelCard

from charrnn import CharRNN, ModelFileError
from hub_card.card import CARD_NAME, SAMPLE_LENGTH, SEED, TEMPERATURES
from hub_card.write import write_card
from hub_card.curve import CURVE_NAME
from training.train import train

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def prose_model_dir(tmp_path_factory) -> Path:
    """A tiny GRU trained on the start of The Time Machine, from a file named like the real corpus."""
    corpus = tmp_path_factory.mktemp("prose") / "timemachine.txt"
    corpus.write_text(cut("timemachine.txt", 4000), encoding="utf-8")
    out = corpus.parent / "timemachine-gru"
    train(tiny_config(corpus, out, cell="gru", epochs=1))
    return out


def copy_model(folder: Path, dest: Path, corpus: str | None = None) -> Path:
    """A copy of folder, its metrics.json claiming another corpus file name when corpus is given."""
    shutil.copytree(folder, dest)
    if corpus:
        metrics = json.loads((dest / "metrics.json").read_text(encoding="utf-8"))
        (dest / "metrics.json").write_text(json.dumps({**metrics, "corpus": corpus}), encoding="utf-8")
    return dest


# (model fixture, corpus name written into metrics.json, language the card must give)
CASES = [("tiny_model_dir", None, "zh"),  # lyrics.txt: unknown name, the language comes from the vocabulary
         ("tiny_model_dir", "jaychou_lyrics.txt", "zh"),
         ("prose_model_dir", None, "en")]


@pytest.fixture(params=CASES, ids=["lyrics-by-text", "jaychou-by-name", "timemachine-by-name"])
def carded(request, tmp_path):
    fixture, corpus, language = request.param
    folder = copy_model(request.getfixturevalue(fixture), tmp_path / "model", corpus)
    write_card(folder)
    return folder, language


def test_card_metadata_parses_with_every_field(carded):
    folder, language = carded
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    data = ModelCard.load(folder / CARD_NAME).data
    assert data.language == language
    assert (data.license, data.library_name, data.pipeline_tag) == ("mit", "charrnn", "text-generation")
    assert {"char-rnn", metrics["train_config"]["cell"]} <= set(data.tags)
    [result] = data.eval_results
    assert (result.task_type, result.metric_type) == ("text-generation", "perplexity")
    assert result.metric_value == round(metrics["val_ppl"], 2)
    assert result.dataset_split == f"last 10% of {metrics['corpus']}"
    assert not result.verified  # self-reported


def test_card_body_reports_the_model(carded):
    folder, _ = carded
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    text = ModelCard.load(folder / CARD_NAME).text
    assert "[More Information Needed]" not in text and "{{" not in text and "{%" not in text
    model = CharRNN.from_pretrained(folder)
    assert f"| parameters | {model.num_parameters():,} |" in text
    for key in ("train_ppl", "val_ppl", "unigram_ppl", "bigram_ppl"):
        assert f"{metrics[key]:.1f}" in text
    assert f"| `batch_size` | `{metrics['train_config']['batch_size']}` |" in text
    assert f"![Training curve: perplexity per epoch]({CURVE_NAME})" in text
    assert (folder / CURVE_NAME).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for heading in ("## Intended use and limitations", "## Training data and license", "can repeat fragments of the training text"):
        assert heading in text


def test_card_samples_come_from_the_model(carded):
    folder, _ = carded
    text = ModelCard.load(folder / CARD_NAME).text
    prefix = re.search(r"from the prefix `(.*?)`", text).group(1)
    model = CharRNN.from_pretrained(folder)
    for t in TEMPERATURES:
        sample = prefix + model.generate(prefix, SAMPLE_LENGTH, temperature=t, seed=SEED)
        assert f"Temperature {t}:\n\n```text\n{sample}\n```" in text


def test_the_jaychou_card_says_the_lyrics_are_copyrighted(tiny_model_dir, tmp_path):
    folder = copy_model(tiny_model_dir, tmp_path / "jaychou-lstm", "jaychou_lyrics.txt")
    text = write_card(folder).text
    assert "copyrighted" in text and "not redistributed" in text
    assert "MIT license" in text


def test_the_snippet_in_the_card_runs(tiny_model_dir, tmp_path):
    folder = copy_model(tiny_model_dir, tmp_path / "jaychou-lstm")
    [snippet] = re.findall(r"```python\n(.*?)```", write_card(folder).text, re.S)
    assert f'CharRNN.from_pretrained("{folder}")' in snippet
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.strip()) > 0


def test_a_card_for_a_repo_loads_that_repo(tiny_model_dir, tmp_path):
    folder = copy_model(tiny_model_dir, tmp_path / "jaychou-lstm")
    card = write_card(folder, "someone/charrnn-jaychou-lstm")
    assert 'CharRNN.from_pretrained("someone/charrnn-jaychou-lstm")' in card.text
    assert card.data.model_name == "charrnn-jaychou-lstm"


def test_a_folder_without_metrics_gets_a_clear_error(tiny_model_dir, tmp_path):
    folder = copy_model(tiny_model_dir, tmp_path / "jaychou-lstm")
    (folder / "metrics.json").unlink()
    with pytest.raises(ModelFileError, match="no metrics.json"):
        write_card(folder)
