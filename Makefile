# Quick start: `make repro` (set up .venv, run the pipeline), `make test` (set up .venv, run the tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup repro compare reset test check-params results report paper paper-table clean-venv bench-env

setup: $(STAMP)

# TF=gpu: TensorFlow with CUDA (requirements-gpu.txt: tensorflow[and-cuda], the same version as tensorflow-cpu,
# and its CUDA libraries pinned) instead of the CPU build, for a machine with an NVIDIA GPU: `make setup TF=gpu`
# (after `make clean-venv` if .venv/ exists). Untested in CI (no GPU there); the fast CPU layers switch
# themselves off on a GPU (srcnn.training.loop).
TF ?= cpu

$(STAMP): requirements.txt requirements-gpu.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==26.3
	$(BIN)/python -m pip install --quiet -r requirements.txt
	if [ "$(TF)" = gpu ]; then $(BIN)/python -m pip uninstall --quiet -y tensorflow-cpu && \
		$(BIN)/python -m pip install --quiet -r requirements-gpu.txt; fi
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

repro: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro
	@echo
	@echo "Next:"
	@echo "  upscale a photo with the model just trained:  $(BIN)/srcnn upscale photo.jpg -o photo_x2.png"
	@echo "  run an experiment:                            $(BIN)/dvc exp run -S train.learning_rate=1e-4"
	@echo "  compare it with this run:                     make compare"
	@echo "  back to the committed run afterwards:         make reset"

# The experiments side by side, narrow enough for a terminal: changed params and each set's SRCNN PSNR only
# (`dvc exp show` alone has ~100 columns: dependency hashes, timings, export parity counts, SSIM, bicubic).
COMPARE_DROP := .*/|.*\.images$$|.*bicubic|.*psnr_gain$$|.*ssim|(onnx|tflite|savedmodel)\.|final_|.*per_second$$|seconds$$|patches$$|epochs$$|resumed_from_epoch$$
compare: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc exp show --only-changed --drop '$(COMPARE_DROP)'

# `dvc exp run` leaves the experiment in the workspace (its -S values in params.yaml, its dvc.lock, its outputs):
# this returns all three to the last commit; experiments stay in `dvc exp show`.
reset: $(STAMP)
	git checkout -- params.yaml dvc.lock metrics
	git clean -fdq -- metrics
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc checkout --force

# Lint first (seconds): ruff's checks and its formatter, configured in pyproject.toml; then the suite, in
# $(TEST_WORKERS) pytest-xdist workers: half the suite's time is single-threaded process start-up (dvc, Python,
# TensorFlow's import), so two workers on 2 cores took 12.0 min against 20.6 in one. --dist loadfile keeps
# each test module on one worker, so a module's fixtures (a trained repo) are built once. TEST_WORKERS=0: in-process.
# --durations=20: the slowest tests close the log, where CI's 20-minute budget is watched.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=20

# README.md's results block, from metrics/evaluate.json (srcnn.shipping.report).
results: $(STAMP)
	$(BIN)/python -m srcnn.shipping.report --write

# A pull-request report: params and metrics diff against $(BASELINE), curves and crops of both (report/).
BASELINE ?= main
report: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m srcnn.evaluation.review --baseline "$(BASELINE)" -o report

# Reproduce the paper's table: ×2, ×3, ×4 trained on the images in $(T91) and scored on every set under
# data/benchmarks/ (Set5 required), one DVC experiment per scale; then their table (results/paper.json).
T91 ?= data/T91
paper: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m srcnn.paper run --train-dir "$(T91)"
	$(BIN)/python -m srcnn.paper table --results results/paper.json

# README.md's paper table, from the shipped models' records (srcnn/weights/*/record.json), and docs/paper.md's
# block of the recipe's commands (srcnn.shipping.paper.RECIPE): both generated, checked by the tests.
paper-table: $(STAMP)
	$(BIN)/python -m srcnn.paper table --write

check-params: $(STAMP)
	$(BIN)/python -m srcnn check-params

clean-venv:
	rm -rf $(VENV)

# bench.py section i's second Python: OpenCV's dnn_superres lives in opencv-contrib only, which the product's
# environment must not get (it would shadow opencv-python-headless's cv2), so it has its own venv, bench/.venv
# (git-ignored; bench/requirements.txt: NumPy and opencv-contrib-python-headless at the product's versions).
BENCH_VENV := bench/.venv
bench-env: $(BENCH_VENV)/.installed

$(BENCH_VENV)/.installed: bench/requirements.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet -r bench/requirements.txt
	touch $@
