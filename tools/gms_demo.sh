#!/usr/bin/env bash
# The quick-start job (`make demo`): on the synthetic lesion set, train the tiny
# KL-VAE, train tiny GMS on top of it (frozen), evaluate on the test split,
# write overlays, and compare with the Otsu threshold baseline.
# Trainings whose final checkpoint exists are skipped (make clean-demo to redo).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=data/synth_lesion
VAE_CFG=configs/gms/vae_kl-f4-tiny_1xb8-600it_synth-lesion.py
GMS_CFG=configs/gms/gms_kl-f4-tiny_1xb8-800it_synth-lesion.py
VAE_CKPT=work_dirs/vae_kl-f4-tiny_1xb8-600it_synth-lesion/iter_600.pth
GMS_CKPT=work_dirs/gms_kl-f4-tiny_1xb8-800it_synth-lesion/iter_800.pth
OUT=outputs/gms_demo
mkdir -p "$OUT"

train() {  # config checkpoint
    if [ -f "$2" ]; then
        echo "[demo] $2 exists, skipping training (make clean-demo to retrain)"
    else
        local t0=$SECONDS
        $PY tools/train.py "$1"
        echo "[demo] trained $(basename "$1") in $((SECONDS - t0)) s" | tee -a "$OUT/wall_times.txt"
    fi
}

echo "[demo] 1/4 tiny KL-VAE on images and masks"
train "$VAE_CFG" "$VAE_CKPT"
echo "[demo] 2/4 tiny GMS with the VAE frozen"
train "$GMS_CFG" "$GMS_CKPT"

echo "[demo] 3/4 evaluate on the test split"
$PY tools/test.py "$GMS_CFG" "$GMS_CKPT" --show-dir "$OUT/test_overlays" \
    --work-dir "$OUT/test_run" | tail -n 1 | tee "$OUT/gms_test.json"
$PY tools/analysis_tools/otsu_baseline.py "$DATA" --split test | tee "$OUT/otsu_test.json"

echo "[demo] 4/4 image demo"
STEM=$(head -n 1 "$DATA/splits/test.txt")
$PY demo/image_demo.py "$GMS_CFG" "$GMS_CKPT" "$DATA/images/$STEM.png" --out-file "$OUT/demo_overlay.png"

$PY - "$OUT/gms_test.json" "$OUT/otsu_test.json" <<'PYEOF'
import json, sys
gms, otsu = (json.load(open(p)) for p in sys.argv[1:3])
print(f"[demo] test Dice: GMS {gms['dice']:.4f} | Otsu baseline {otsu['dice']:.4f} "
      f"(gap {gms['dice'] - otsu['dice']:+.4f}); GMS IoU {gms['iou']:.4f}, HD95 {gms['hd95']:.2f} px")
PYEOF
