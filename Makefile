# One command to set up and start the demo (`make demo`), one to set up and run the tests (`make test`).
PY := .venv/bin/python
DATA ?= ../shared/data
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
JAYCHOU_CELLS := lstm gru rnn rnn-scratch  # the best first: `make demo` opens with it
VARIANTS := $(JAYCHOU_CELLS:%=models/jaychou-%) models/timemachine-lstm models/jaychou-next-line
TRAIN_FLAGS ?= --max-minutes 1.6  # every variant within a few CPU minutes
# English prose has no long tail of rare characters: it needs far less smoothing and dropout than the lyrics'
# defaults, and with 68 characters no bottleneck before the output layer (docs/results.md).
PROSE_FLAGS := --label-smoothing 0 --unk-dropout 0 --dropout 0.1 --weight-drop 0.1 --embed-dropout 0 --head-size 0
# The encoder-decoder steps its decoder in Python: a smaller one fits six epochs in the budget.
NEXT_LINE_FLAGS := --task next-line --context attention --embed-size 64 --hidden-size 128 --batch-size 64
export GRADIO_ANALYTICS_ENABLED = False

.PHONY: setup browser models demo test test-fast bench publish clean
setup: .venv/.installed

.venv/.installed: pyproject.toml
	python3 -m venv .venv
	.venv/bin/pip install -q --upgrade pip
	.venv/bin/pip install -q torch==2.13.0  # the CPU wheel first: an unpinned torch pulls a CUDA build
	.venv/bin/pip install -q -e ".[dev]"  # the library, the app, training and the tests' tools, from this checkout
	touch $@

browser:  # Debian's Chromium (with CJK fonts) for the browser tests
	@command -v chromium >/dev/null && fc-list | grep -qi "noto.*cjk" || \
	  (DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get update -q && \
	   DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium fonts-noto-cjk)

models: setup $(VARIANTS:%=%/model.safetensors)
.PRECIOUS: $(VARIANTS:%=%/model.safetensors)  # stopping `make demo` during a card must not delete the weights

# It is fused with the LSTM: primed with the line, and its states a cache over the line (charrnn/fusion.py).
models/jaychou-next-line/model.safetensors: models/jaychou-lstm/model.safetensors
	$(PY) -m training --corpus $(DATA)/jaychou_lyrics.txt --out models/jaychou-next-line $(NEXT_LINE_FLAGS) \
	  --fuse-with models/jaychou-lstm $(TRAIN_FLAGS)
	$(PY) -m hub_card card --model models/jaychou-next-line

# Every lyrics model mixes in the words of Chinese as a count model too (charrnn/lexicon.py, from wordfreq's list):
# it knows word pairs the lyrics never show (docs/results.md).
LYRICS_FLAGS := --lexicon zh
# The LSTM, trained first, teaches the other cells: each learns from its distribution on the training text as well
# as from the text itself (knowledge distillation; what it gave: docs/results.md).
TEACHER := models/jaychou-lstm
$(TEACHER)/model.safetensors:
	$(PY) -m training --corpus $(DATA)/jaychou_lyrics.txt --cell lstm --out $(TEACHER) $(LYRICS_FLAGS) $(TRAIN_FLAGS)
	$(PY) -m hub_card card --model $(TEACHER)

models/jaychou-%/model.safetensors: $(TEACHER)/model.safetensors
	$(PY) -m training --corpus $(DATA)/jaychou_lyrics.txt --cell $* --out models/jaychou-$* --teacher $(TEACHER) $(LYRICS_FLAGS) $(TRAIN_FLAGS)
	$(PY) -m hub_card card --model models/jaychou-$*

models/timemachine-%/model.safetensors:
	$(PY) -m training --corpus $(DATA)/timemachine.txt --cell $* --out models/timemachine-$* $(PROSE_FLAGS) $(TRAIN_FLAGS)
	$(PY) -m hub_card card --model models/timemachine-$*

comma := ,
empty :=
space := $(empty) $(empty)
publish: models  # make publish HF_USER=you: every variant as a model repo, then the Space
	@test -n "$(HF_USER)" || (echo "set HF_USER=your-hub-name" && exit 2)
	for v in $(VARIANTS:models/%=%); do $(PY) -m hub_card push --model models/$$v --repo-id $(HF_USER)/charrnn-$$v || exit 1; done
	$(PY) -m hub_card space --repo-id $(HF_USER)/charrnn-lyrics --models $(subst $(space),$(comma),$(VARIANTS:models/%=$(HF_USER)/charrnn-%))

demo: setup  # the page opens with the models already trained; the rest train in the background and join it
	mkdir -p models
	$(MAKE) --no-print-directory models & trainer=$$!; CHARRNN_TRAINING=1 $(PY) app.py; kill $$trainer 2>/dev/null; wait

test: setup browser  # everything, as CI runs it
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q tests

test-fast: setup  # no server, no browser, no long training: the library, training, cards and Hub files
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q tests -m "not server and not browser and not slow"

bench: setup models/jaychou-lstm/model.safetensors
	$(PY) -m bench.training_speed
	$(PY) -m bench.decoding_speed
	$(PY) -m bench.form

clean:
	rm -rf models checkpoints test-output
