#!/usr/bin/env bash
# One install entry for mmfusion. Idempotent: when nothing that
# decides the environment changed since the last successful run, it exits at once.
#   venv -> torch/torchvision/torchaudio pins -> mmcv 2.1.0 compiled without build
#   isolation (pip's wheel cache makes later installs take seconds) -> the rest -> -e .
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
STAMP="$VENV/.mmfusion-install.sha"
want=$(cat tools/install.sh requirements/*.txt setup.py | sha256sum | cut -d' ' -f1)

# Debian packages: espeak-ng synthesises SynthSpeech; pocketsphinx-testdata
# ships real LibriVox speech clips with transcripts (the audio demo's smoke
# test, /usr/share/pocketsphinx/test/data/librivox); libcgal-demo ships CGAL's
# demo meshes (/usr/share/doc/libcgal-dev/data.tar.gz: animals, people, CAD
# parts, simple solids), the real-mesh test set of `make cgal_meshes`.
missing=()
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
dpkg -s pocketsphinx-testdata >/dev/null 2>&1 || missing+=(pocketsphinx-testdata)
dpkg -s libcgal-demo >/dev/null 2>&1 || missing+=(libcgal-demo)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    if ! command -v apt-get >/dev/null 2>&1 || { [ -n "$SUDO" ] && ! sudo -n true 2>/dev/null; }; then
        # Not Debian, or neither root nor password-less sudo: the Python install goes on;
        # only the parts that read these packages skip (their tests say why).
        echo "[install] WARNING: cannot apt-get install ${missing[*]} (needs Debian and root or sudo)."
        echo "[install]   espeak-ng: SynthSpeech / Zipper; pocketsphinx-testdata: the audio demo's real"
        echo "[install]   speech; libcgal-demo: make cgal_meshes; chromium, chromium-driver: the web"
        echo "[install]   demo's browser test. Those tests skip; the rest of mmfusion is unaffected."
    else
        echo "[install] ${missing[*]} (apt)"
        if ! { $SUDO apt-get update -qq &&
               DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null; }; then
            echo "[install] WARNING: apt-get failed for ${missing[*]}; the tests that need them skip"
        fi
    fi
fi

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
    echo "[install] $VENV is up to date"
    exit 0
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip "$@"; }
export PIP_DISABLE_PIP_VERSION_CHECK=1

echo "[install] torch, torchvision, torchaudio (exact pins; ~2 min the first time)"
# torchaudio is installed in a second step: resolving all three at once picks
# mismatched builds (requirements/torch.txt has the one combination that imports).
pip install -q torch==2.9.1 torchvision==0.24.1
pip install -q -r requirements/torch.txt

# mmcv/mmengine pick opencv-python unless a headless OpenCV is already present.
pip install -q opencv-python-headless 'setuptools<80' wheel ninja

if "$VENV/bin/python" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '2.1.0'" 2>/dev/null; then
    echo "[install] mmcv 2.1.0 with ops already installed"
else
    echo "[install] mmcv 2.1.0: no wheel exists for torch 2.9; the first build compiles"
    echo "[install] the CPU ops (~12-18 min on 2 cores). pip caches the wheel afterwards."
    MAX_JOBS=${MAX_JOBS:-2} pip install --no-build-isolation mmcv==2.1.0
fi

echo "[install] OpenMMLab stack and runtime requirements"
pip install -q -c requirements/constraints.txt \
    -r requirements/mminstall.txt -r requirements/runtime.txt -r requirements/tests.txt
pip install -q --no-build-isolation --no-deps -e .
"$VENV/bin/python" -c "import torch, torchvision, torchaudio, mmcv.ops, mmdet, mmseg, mmfusion; print('[install] ok: torch', torch.__version__, 'mmcv', mmcv.__version__)"
echo "$want" > "$STAMP"
