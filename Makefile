# mmfusion: `make demo` trains, evaluates and demos GMS on embedded data;
# `make test` runs the test suite. Both install what they need first.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install data demo test clean-demo

install:
	bash tools/install.sh

data: install
	$(PY) tools/dataset_converters/generate_synth_lesion.py --out data/synth_lesion

demo: data
	bash tools/gms_demo.sh

test: install
	$(PY) -m pytest -q

clean-demo:
	rm -rf work_dirs/vae_kl-f4-tiny_1xb8-600it_synth-lesion work_dirs/gms_kl-f4-tiny_1xb8-800it_synth-lesion outputs/gms_demo
