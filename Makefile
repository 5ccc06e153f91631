# The two commands a new user needs: `make demo` and `make test`.
# Both create or reuse .venv and install what is missing (tools/setup_env.sh);
# a second call does no install work. `make demo` waits only for the demo's
# stack (core: torch, mmengine, mmpretrain, mmcv without compiled ops);
# `make test` for the full stack (mmcv's compiled ops, mmseg, mmdet).
VENV ?= .venv
PY := $(VENV)/bin/python
CORE_STAMP := $(VENV)/.mmmask-core
STAMP := $(VENV)/.mmmask-env
DEMO_CFG := configs/demo/mae_vit-tiny-p8_random-mask_1xb32-60e_shapes-64px.py
DEMO_DIR := work_dirs/demo_mae
DEMO_DATA := data/shapes-64px
MASK_CFGS := $(foreach m,random block grid,configs/mae/mae_vit-base-p16_$(m)-mask_8xb512-amp-coslr-800e_in1k.py)

.PHONY: env env-core test lint demo gallery clean-demo

env: $(STAMP)
env-core: $(CORE_STAMP)

$(STAMP): requirements/*.txt setup.py tools/setup_env.sh
	VENV=$(VENV) bash tools/setup_env.sh full

$(CORE_STAMP): requirements/*.txt setup.py tools/setup_env.sh
	VENV=$(VENV) bash tools/setup_env.sh core

# the suite in parallel (pytest-xdist): one worker per core, at most 4,
# each with one torch thread; a test file stays on one worker (its module
# fixtures are built once) and the costliest files start first
# (tests/conftest.py); TEST_WORKERS=0 runs it in this process. Only the
# tests get OMP_NUM_THREADS: a target-specific export would reach the
# set-up too, whose nproc obeys it
TEST_WORKERS ?= auto
TEST_THREADS ?= 1
test: $(STAMP)
	OMP_NUM_THREADS=$(TEST_THREADS) $(PY) -m pytest tests -q \
		-n $(TEST_WORKERS) --maxprocesses 4 --dist loadfile --no-loadscope-reorder

# style check of the package, tools and tests (setup.cfg [flake8])
lint: $(STAMP)
	$(PY) -m flake8 mmmask tools tests setup.py

# mmcv-lite, the demo's mmcv until `make test` puts mmcv with compiled ops
# in its place, warns at import that mmcv.ops is missing: the demo does not
# use it
demo gallery: export PYTHONWARNINGS = ignore::UserWarning:mmcv.cnn.bricks.transformer
# torch threads: one unless you say otherwise (OMP_NUM_THREADS=...), and
# for the demo's training as many as cores are free when it starts
# (tools/misc/idle_cores.py measures it in half a second): on an idle
# 2-core machine two threads train about twice as fast as one, while on a
# busy one two threads made a demo step 20x slower (8-12 s instead of
# 0.46 s under a load average of 10-12; docs/install.md)
ifeq ($(origin OMP_NUM_THREADS),undefined)
TRAIN_THREADS = $(shell $(PY) tools/misc/idle_cores.py 2>/dev/null || echo 1)
else
TRAIN_THREADS = $(OMP_NUM_THREADS)
endif
demo gallery: export OMP_NUM_THREADS ?= 1

# --resume: a second `make demo` continues (or, when finished, reuses) the
# run in $(DEMO_DIR) instead of being refused by the work-dir protection;
# `make clean-demo` starts over
demo: $(CORE_STAMP)
	@echo "[demo 1/4] $(DEMO_DATA): 512 synthetic 64x64 images"
	$(PY) tools/misc/make_shapes_dataset.py --out $(DEMO_DATA) --num 512 --size 64
	@echo "[demo 2/4] pre-training the tiny MAE, 60 epochs (progress lines; the full log is in $(DEMO_DIR)/<time>/)"
	OMP_NUM_THREADS=$(TRAIN_THREADS) $(PY) tools/train.py $(DEMO_CFG) --work-dir $(DEMO_DIR) --resume
	@echo "[demo 3/4] reconstructions of the checkpoint"
	$(PY) tools/analysis/visualize_reconstruction.py $(DEMO_CFG) \
		$$(cat $(DEMO_DIR)/last_checkpoint) --out $(DEMO_DIR)/reconstruction.png
	@echo "[demo 4/4] random, block-wise and grid masks"
	$(PY) tools/analysis/visualize_masks.py $(DEMO_CFG) $(MASK_CFGS) \
		--images $(DEMO_DATA) --out $(DEMO_DIR)/masks.png
	@echo "demo done: checkpoint $$(cat $(DEMO_DIR)/last_checkpoint), pictures $(DEMO_DIR)/reconstruction.png $(DEMO_DIR)/masks.png"

# the README's gallery (gallery_*.png): every strategy's masks, the
# attention-driven ones from the demo checkpoint, drawn into $(GALLERY_DIR);
# maintainers refresh the committed pictures with
# `make gallery GALLERY_DIR=docs/images`
GALLERY_DIR ?= work_dirs/gallery
gallery: demo
	$(PY) tools/analysis/make_gallery.py --checkpoint $$(cat $(DEMO_DIR)/last_checkpoint) \
		--images $(DEMO_DATA) --out $(GALLERY_DIR)

clean-demo:
	rm -rf $(DEMO_DIR)
