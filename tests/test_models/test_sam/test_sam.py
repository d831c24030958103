"""SAM against segment_anything's own SamPredictor, official checkpoint layout,
training gradients, the feature cache and prompt checks."""
from functools import partial

import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData
from torch import nn

from mmfusion.models.encoders.feature_cache import FeatureCache
from mmfusion.models.encoders.vision import split_sam_checkpoint
from mmfusion.models.sam import SAM, SAMAutomaticMaskGenerator
from mmfusion.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS
from mmfusion.structures import FusionDataSample
from mmfusion.structures.prompt_sampling import build_prompts

sam_pkg = pytest.importorskip('segment_anything')
modeling = sam_pkg.modeling

IMG = 96
PREPROCESSOR = dict(type='MultiModalDataPreprocessor',
                    img=dict(type='ImgDataPreprocessor', mean=[123.675, 116.28, 103.53],
                             std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=IMG))


def tiny_sam(**kwargs) -> SAM:
    torch.manual_seed(0)
    model = SAM(arch='tiny', img_size=IMG, data_preprocessor=PREPROCESSOR, **kwargs)
    with torch.no_grad():  # zero-initialised position embeddings must matter too
        for p in model.image_encoder.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return model.eval()


def upstream_tiny_sam() -> 'modeling.Sam':
    """A Sam assembled from segment_anything's classes with the tiny arch's
    hyper-parameters, independently of mmfusion."""
    return modeling.Sam(
        image_encoder=modeling.ImageEncoderViT(
            img_size=IMG, patch_size=8, embed_dim=96, depth=4, num_heads=3, mlp_ratio=4,
            out_chans=64, qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6),
            use_rel_pos=True, window_size=6, global_attn_indexes=(1, 3)),
        prompt_encoder=modeling.PromptEncoder(embed_dim=64, image_embedding_size=(12, 12),
                                              input_image_size=(IMG, IMG), mask_in_chans=16),
        mask_decoder=modeling.MaskDecoder(
            transformer_dim=64, num_multimask_outputs=3, iou_head_depth=3, iou_head_hidden_dim=64,
            transformer=modeling.TwoWayTransformer(depth=2, embedding_dim=64, mlp_dim=256,
                                                   num_heads=4)),
        pixel_mean=[123.675, 116.28, 103.53], pixel_std=[58.395, 57.12, 57.375]).eval()


@pytest.fixture(scope='module')
def pair(tmp_path_factory):
    """(mmfusion SAM loaded from an official-layout file, upstream Sam with the
    same weights, the file)."""
    source = tiny_sam()
    official = {f'{part}.{k}': v for part, sd in
                split_sam_checkpoint(source.state_dict()).items() for k, v in sd.items()}
    reference = upstream_tiny_sam()
    reference.load_state_dict(official, strict=True)
    path = str(tmp_path_factory.mktemp('sam') / 'sam_tiny_official.pth')
    torch.save(official, path)
    model = SAM(arch='tiny', img_size=IMG, checkpoint=path, data_preprocessor=PREPROCESSOR,
                test_cfg=dict(return_logits=True)).eval()
    return model, reference, path


def _image(h=72, w=96, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    img[20:50, 30:70] = (200, 40, 40)
    return img


def _predict(model: SAM, rgb: np.ndarray, prompts: InstanceData) -> InstanceData:
    h, w = rgb.shape[:2]
    bgr = torch.from_numpy(np.ascontiguousarray(rgb[..., ::-1].transpose(2, 0, 1)))
    sample = FusionDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w)))
    sample.prompts = prompts
    with torch.no_grad():
        return model.test_step(dict(inputs=dict(img=[bgr]), data_samples=[sample]))[0] \
            .pred_instances


@pytest.mark.parametrize('case', ['two_boxes', 'points', 'lone_point', 'box_and_point',
                                  'mask_input'])
def test_matches_sam_predictor(pair, case):
    model, reference, _ = pair
    rgb = _image()
    predictor = sam_pkg.SamPredictor(reference)
    predictor.set_image(rgb)
    mask_input = None
    if case == 'two_boxes':
        boxes = [[30, 20, 70, 50], [5, 5, 40, 60]]
        ref, ref_iou, _ = predictor.predict_torch(
            None, None, torch.tensor(boxes, dtype=torch.float), multimask_output=False,
            return_logits=True)
        ref, ref_iou = ref[:, 0], ref_iou[:, 0]
        prompts = build_prompts(boxes=boxes)
        model.test_cfg['multimask'] = 'auto'
    else:
        box = np.array([30, 20, 70, 50], float) if case in ('box_and_point', 'mask_input') \
            else None
        points = {'points': [[50, 35], [10, 60]], 'lone_point': [[50, 35]],
                  'box_and_point': [[50, 35]], 'mask_input': [[10, 60]]}[case]
        labels = [1, 0] if case in ('points', 'mask_input') else [1]
        if case == 'mask_input':
            labels = [0]
            _, _, mask_input = predictor.predict(box=box, multimask_output=False)
        multimask = case == 'lone_point'
        ref, ref_iou, _ = predictor.predict(np.array(points, float), np.array(labels), box,
                                            mask_input, multimask_output=multimask,
                                            return_logits=True)
        best = int(ref_iou.argmax())
        ref = torch.from_numpy(ref[best:best + 1])
        ref_iou = torch.from_numpy(ref_iou[best:best + 1])
        prompts = build_prompts(boxes=None if box is None else [box.tolist()], points=points,
                                point_labels=labels)
        if mask_input is not None:
            prompts.mask_inputs = torch.from_numpy(mask_input)[None]
        model.test_cfg['multimask'] = 'auto' if case == 'lone_point' else False
    pred = _predict(model, rgb, prompts)
    assert pred.logits.shape == ref.shape == (len(prompts), 72, 96)
    assert (pred.logits - ref).abs().max().item() <= 1e-5
    assert torch.allclose(pred.scores, ref_iou, atol=1e-5)
    assert torch.equal(pred.masks, ref > 0)


def test_official_vit_b_layout_loads_strictly(tmp_path):
    torch.manual_seed(0)
    official = sam_pkg.sam_model_registry['vit_b']()  # random weights, the official keys
    path = str(tmp_path / 'sam_vit_b_01ec64.pth')
    torch.save(official.state_dict(), path)
    model = SAM(arch='vit_b', img_size=1024, checkpoint=path)
    parts = split_sam_checkpoint(model.state_dict())
    ref = official.state_dict()
    assert sum(len(p) for p in parts.values()) == len(ref)
    for part, state in parts.items():
        for k, v in state.items():
            assert torch.equal(v, ref[f'{part}.{k}']), f'{part}.{k}'
    # the mmfusion checkpoint of that model loads back the same way
    mine = str(tmp_path / 'mmfusion.pth')
    torch.save(dict(state_dict=model.state_dict(), meta={}), mine)
    again = SAM(arch='vit_b', img_size=1024, checkpoint=mine)
    assert torch.equal(again.mask_decoder.mask_decoder.iou_token.weight,
                       ref['mask_decoder.iou_token.weight'])


def test_checkpoint_errors(tmp_path, pair):
    _, _, path = pair
    with pytest.raises(RuntimeError, match=r'SAMImageEncoder: checkpoint .* does not fit'):
        SAM(arch='vit_b', img_size=1024, checkpoint=path)
    other = str(tmp_path / 'other.pth')
    torch.save({'backbone.weight': torch.zeros(1)}, other)
    with pytest.raises(KeyError, match=r'other\.pth.*missing parts'):
        SAM(arch='tiny', img_size=IMG, checkpoint=other)
    with pytest.raises(ValueError, match='unknown arch'):
        SAM(arch='vit_x')
    with pytest.raises(KeyError, match='unknown train_cfg/test_cfg keys'):
        SAM(arch='tiny', img_size=IMG, train_cfg=dict(num_click=3))


def _train_batch(n_images=2, seed=0):
    """Images with two rectangles each, their masks and first prompts."""
    rng = np.random.default_rng(seed)
    inputs, samples = [], []
    for i in range(n_images):
        img = rng.integers(100, 140, (IMG, IMG, 3), dtype=np.uint8)
        masks = np.zeros((2, IMG, IMG), bool)
        masks[0, 10:40, 10:50] = True
        masks[1, 55:90, 40 + i:80] = True
        img[masks[0]] = (0, 0, 255)
        img[masks[1]] = (0, 255, 0)
        inputs.append(torch.from_numpy(img.transpose(2, 0, 1).copy()))
        sample = FusionDataSample(metainfo=dict(img_shape=(IMG, IMG), ori_shape=(IMG, IMG),
                                                sample_id=f'img{i}'))
        sample.gt_instances = InstanceData(masks=torch.from_numpy(masks),
                                           labels=torch.zeros(2, dtype=torch.long))
        prompts = build_prompts(boxes=[[10, 10, 50, 40], [40 + i, 55, 80, 90]])
        prompts.has_box = torch.tensor([True, False])  # one box-first, one point-first object
        prompts.points = torch.tensor([[[0., 0.]], [[60., 70.]]])
        prompts.point_labels = torch.tensor([[-1], [1]])
        sample.prompts = prompts
        samples.append(sample)
    return dict(inputs=dict(img=inputs), data_samples=samples)


def test_gradients_reach_exactly_the_trainable_parts():
    model = tiny_sam(image_encoder=dict(frozen=True), prompt_encoder=dict(frozen=True),
                     train_cfg=dict(num_points=2, num_mask_only=1)).train()
    assert not model.image_encoder.training  # frozen parts stay in eval mode
    data = model.data_preprocessor(_train_batch(), True)
    losses = model.loss(**data)
    assert set(losses) == {'loss_focal', 'loss_dice', 'loss_iou'}
    sum(losses.values()).backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    decoder = {n for n, _ in model.named_parameters() if n.startswith('mask_decoder.')}
    assert with_grad == decoder
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
        type='FusionOptimWrapperConstructor',
        optim_wrapper_cfg=dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3))))
    wrapper = constructor(model)
    wrapper.step()
    in_optimizer = {id(p) for g in wrapper.optimizer.param_groups for p in g['params']}
    assert in_optimizer == {id(p) for n, p in model.named_parameters() if n in decoder}
    assert set(wrapper.optimizer.state) <= {p for n, p in model.named_parameters()
                                            if n in decoder}


def test_lora_image_encoder_trains_only_adapters_and_decoder():
    model = tiny_sam(image_encoder=dict(lora=dict(target_modules=['qkv'], r=4, alpha=8)),
                     prompt_encoder=dict(frozen=True), train_cfg=dict(num_points=1,
                                                                      num_mask_only=0))
    model.train()
    data = model.data_preprocessor(_train_batch(), True)
    sum(model.loss(**data).values()).backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert with_grad == trainable
    assert {n for n in trainable if n.startswith('image_encoder.')} == \
        {n for n, _ in model.named_parameters() if 'lora_' in n}
    assert any(n.startswith('mask_decoder.') for n in trainable)
    assert not any(n.startswith('prompt_encoder.') for n in trainable)


def test_feature_cache_gives_the_same_losses(tmp_path):
    model = tiny_sam(image_encoder=dict(frozen=True), train_cfg=dict(num_points=2,
                                                                     num_mask_only=1))
    model.train()
    data = model.data_preprocessor(_train_batch(), True)
    torch.manual_seed(1)
    plain = model.loss(**data)
    model.image_encoder.attach_feature_cache(FeatureCache(str(tmp_path), 'fp'))
    for _ in range(2):  # the first pass fills the cache, the second reads it
        torch.manual_seed(1)
        cached = model.loss(**data)
        for k in plain:
            assert torch.allclose(cached[k], plain[k], atol=1e-6), k
    assert len(list(tmp_path.rglob('*.safetensors'))) == 2


def test_simulated_interaction_learns_a_batch():
    """Thirty steps on one batch: the masks get much better (the whole
    training path, corrective points and mask feedback included, learns)."""
    model = tiny_sam(train_cfg=dict(num_points=2, num_mask_only=1),
                     test_cfg=dict(return_click_ious=True))
    data = model.data_preprocessor(_train_batch(), True)
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)

    def box_miou():
        model.eval()
        samples = [s.clone() for s in data['data_samples']]
        for s in samples:
            s.prompts.has_box = torch.tensor([True, True])
        with torch.no_grad():
            out = model.predict(data['inputs'], samples)
        return torch.cat([s.pred_instances.click_ious[:, 0] for s in out]).mean().item()

    before = box_miou()
    model.train()
    for _ in range(30):
        optim.zero_grad()
        sum(model.loss(**data).values()).backward()
        optim.step()
    after = box_miou()
    assert after > 0.8 and after > before + 0.3, (before, after)


def test_clicks_and_click_ious():
    model = tiny_sam(test_cfg=dict(num_clicks=3))
    data = model.data_preprocessor(_train_batch(1), False)
    with torch.no_grad():
        out = model.predict(**data)[0]
    inst = out.pred_instances
    assert inst.click_ious.shape == (2, 4)
    gt = data['data_samples'][0].gt_instances.masks
    final = (inst.masks & gt).flatten(1).sum(1) / (inst.masks | gt).flatten(1).sum(1)
    assert torch.allclose(inst.click_ious[:, -1], final.float(), atol=1e-6)
    assert torch.equal(out.pred_sem_seg.data[0].bool(), inst.masks.any(0))


@pytest.mark.parametrize('edit, message', [
    (lambda p: p.boxes.__setitem__((0, 2), 200.), r'img0.*box prompts .* outside the 96x96'),
    (lambda p: p.point_labels.__setitem__((1, 0), 2), r'img0.*point labels must be 1'),
    (lambda p: p.points.__setitem__((1, 0, 0), -3.), r'img0.*point prompts .* outside'),
])
def test_bad_prompts_are_refused(edit, message):
    model = tiny_sam()
    data = model.data_preprocessor(_train_batch(1), False)
    data['data_samples'][0].set_metainfo(dict(img_path='img0.png'))
    edit(data['data_samples'][0].prompts)
    with pytest.raises(ValueError, match=message):
        model.predict(**data)
    with pytest.raises(ValueError, match=message):
        model.train().loss(**data)


def test_automatic_masks_match_the_generator():
    model = tiny_sam(test_cfg=dict(mode='auto', auto_cfg=dict(
        points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0)))
    rgb = _image(96, 96)
    direct = SAMAutomaticMaskGenerator(model, points_per_side=4, pred_iou_thresh=0.0,
                                       stability_score_thresh=0.0).generate_instances(rgb)
    assert len(direct) > 0 and direct.masks.shape[1:] == (96, 96)
    pred = _predict(model, rgb, build_prompts(boxes=[[0, 0, 1, 1]]))
    assert torch.equal(pred.masks, direct.masks)
    assert torch.allclose(pred.scores, direct.scores)
    with pytest.raises(ValueError, match='RGB uint8'):
        SAMAutomaticMaskGenerator(model).generate(rgb.astype(np.float32))


def test_registered_and_sized():
    model = MODELS.build(dict(type='SAM', arch='tiny', img_size=IMG))
    assert model.grid == 12
    with pytest.raises(ValueError, match='padded to 96x96'):
        model.embed_images(torch.zeros(1, 3, 64, 64), [FusionDataSample()])
