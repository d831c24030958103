"""FrozenSeg (Chen et al., 2024): open-vocabulary segmentation from a frozen
CLIP (semantics), a frozen SAM (spatial priors) and a light trainable decoder,
with CLIP's own mask-pooled classification ensembled in at inference."""
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.structures import InstanceData
from torch import Tensor, nn

from mmfusion.models.common.base_model import FusionBaseModel
from mmfusion.models.common.mask import SEG_TASKS
from mmfusion.models.common.open_vocab_ensemble import (
    clip_oov_logits,
    clip_scoring_setup,
    split_synonyms,
)
from mmfusion.models.common.open_vocab_seg import OpenVocabSegMixin
from mmfusion.registry import MODELS
from mmfusion.structures import FusionDataSample


@MODELS.register_module()
class FrozenSeg(OpenVocabSegMixin, FusionBaseModel):
    """Frozen CLIP + frozen SAM image encoders -> :class:`FrozenSegHead`.

    Class names of an image come from its metainfo ``classes`` or the
    model's ``classes``; a name may list synonyms separated by commas
    (``'person, child'``), each embedded with the prompt templates and the
    class scored by the best synonym. The text classifier ends with a
    learnable void (no-object) embedding.

    Args:
        clip_encoder (dict): ``OpenCLIPImageEncoder`` with dense maps (a
            ConvNeXt or ModifiedResNet tower), frozen. Its ``maps`` (high to
            low resolution) feed the pixel decoder; its last map is mask
            pooled for the out-of-vocabulary scores, so ``out_indices`` (the
            stages given to the pixel decoder) must end with the last stage.
        sam_encoder (dict): ``SAMImageEncoder``, frozen. It sees the padded
            batch resized to its ``img_size`` square (aspect not kept, as the
            official code), normalised with SAM's statistics.
        text_encoder (dict): ``OpenCLIPTextEncoder`` of the same CLIP, frozen.
        head (dict): :class:`FrozenSegHead` (``embed_dim`` defaults to the
            text encoder's).
        templates: prompt templates (``'vild'``, the official 14).
        classes, thing_classes: default class names and which are things.
        train_classes (list[str], optional): The classifier in training,
            when it is not the dataset's class list: e.g. only the seen
            classes of a dataset whose label space also names held-out ones
            (which would otherwise be trained as negatives everywhere). Ground
            truth labels are mapped to it by name; a segment of another class
            is an error.
        clip_norm (dict, optional): ``mean``/``std`` (0-255 RGB) the CLIP
            tower was trained with; default the encoder's ``mean``/``std``.
        clip_logit_scale (float, optional): CLIP's own temperature (log
            scale) for the out-of-vocabulary scores. By default it is read
            from ``clip_encoder.checkpoint`` (``logit_scale`` of an open_clip
            file, or of an mmfusion CLIP checkpoint, where the pretrainer
            stores it), else ``log(1 / 0.07)`` with a warning.
        oov_source (str): how CLIP classifies a mask for the ensemble:
            ``'mask_pool'`` (the paper: average its last map over the mask,
            then CLIP's head) or ``'box_crop'`` (CLIP on an image crop around
            the mask, as region-text pairs are cropped; for a tiny CLIP whose
            dense map does not transfer to whole scenes: see the README).
        ensemble (dict, optional): ``OpenVocabEnsemble`` (alpha 0.4, beta
            0.8); its ``seen_classes`` default to ``train_classes``, else
            ``classes`` (the classes trained on). A model trained on its
            dataset's names without either must set them here, or every
            class counts as unseen (a warning says so). ``None`` turns the
            ensemble off (the decoder's scores alone).
        data_preprocessor (dict): images must reach the model as 0-255 RGB
            (no normalisation): each frozen tower normalises with its own
            statistics.
    """

    def __init__(self,
                 clip_encoder: dict,
                 sam_encoder: dict,
                 text_encoder: dict,
                 head: dict,
                 templates: Union[str, Sequence[str]] = 'vild',
                 classes: Optional[Sequence[str]] = None,
                 thing_classes: Optional[Sequence[str]] = None,
                 train_classes: Optional[Sequence[str]] = None,
                 clip_norm: Optional[dict] = None,
                 clip_logit_scale: Optional[float] = None,
                 oov_source: str = 'mask_pool',
                 clip_crop_size: int = 32,
                 ensemble: Optional[dict] = dict(type='OpenVocabEnsemble'),
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.clip_encoder = MODELS.build(dict(dict(frozen=True), **clip_encoder))
        self.sam_encoder = MODELS.build(dict(dict(frozen=True), **sam_encoder))
        self.text_encoder = MODELS.build(dict(dict(frozen=True), **text_encoder))
        head = dict(head)
        head.setdefault('embed_dim', self.text_encoder.embed_dim)
        self.head = MODELS.build(head)
        if self.head.embed_dim != self.clip_encoder.embed_dim:
            raise ValueError(f'FrozenSeg: the head embeds into {self.head.embed_dim} dims, the '
                             f'CLIP image tower into {self.clip_encoder.embed_dim}')
        clip = self.clip_encoder
        if clip.arch == 'vit' or clip.out_indices[-1] != clip.num_levels - 1:
            raise ValueError('FrozenSeg: the CLIP tower must be a CNN (ConvNeXt, ModifiedResNet) '
                             'whose out_indices end with its last stage (the map CLIP pools), '
                             f'got arch {self.clip_encoder.arch!r}, out_indices '
                             f'{self.clip_encoder.out_indices}')
        self.void_embedding = nn.Embedding(1, self.head.embed_dim)
        self.init_class_names(templates, classes, thing_classes)
        self.train_classes = list(train_classes) if train_classes is not None else None
        clip_mean, clip_std, clip_logit_scale = clip_scoring_setup(
            'FrozenSeg', self.clip_encoder, clip_encoder, clip_norm, clip_logit_scale,
            oov_source)
        self.register_buffer('clip_mean', clip_mean, persistent=False)
        self.register_buffer('clip_std', clip_std, persistent=False)
        self.register_buffer('clip_logit_scale', clip_logit_scale)
        for stat in ('mean', 'std'):
            self.register_buffer(f'sam_{stat}', torch.tensor(
                getattr(self.sam_encoder, stat)).view(1, 3, 1, 1), persistent=False)
        self.oov_source, self.clip_crop_size = oov_source, clip_crop_size
        self.ensemble = None
        if ensemble is not None:
            # the classes the decoder trained on are the seen ones
            ensemble = dict(ensemble)
            ensemble.setdefault('seen_classes', self.train_classes or classes)
            if ensemble['seen_classes'] is None:
                print_log('FrozenSeg: the ensemble knows no seen classes (no train_classes, '
                          'classes or ensemble.seen_classes): every class is treated as unseen',
                          logger='current', level=30)
            self.ensemble = MODELS.build(ensemble)

    @property
    def tasks(self) -> tuple:
        """What :meth:`predict` can run (the demos and inferencers read it)."""
        return SEG_TASKS

    @property
    def default_task(self) -> str:
        return self.head.test_cfg['task']

    # -- features ----------------------------------------------------------
    def extract_feat(self, img: Tensor, data_samples: Optional[Sequence[FusionDataSample]] = None
                     ) -> Dict[str, Union[Tensor, List[Tensor]]]:
        """CLIP maps (high to low resolution; the last is the trunk's output)
        and the SAM embedding, through
        the encoders' feature cache when a ``FeatureCacheHook`` attached one
        (images must then be the same on every epoch: no random augmentation)."""
        clip_in = (img - self.clip_mean) / self.clip_std
        # (a call that breaks the graph is kept out of another call's arguments: a bound method
        # left on the stack is a new object every batch, which recompiles under torch.compile)
        clip_ids = self.clip_encoder.cache_ids(data_samples)
        maps = self.clip_encoder.forward_cached(clip_in, clip_ids, keys=['maps'])['maps']
        size = self.sam_encoder.img_size
        sam_in = F.interpolate((img - self.sam_mean) / self.sam_std, size=(size, size),
                               mode='bilinear', align_corners=False)
        sam_ids = self.sam_encoder.cache_ids(data_samples)
        sam_embed = self.sam_encoder.forward_cached(sam_in, sam_ids, keys=['embed'])['embed']
        # contiguous, as the cache stores them: the same kernels run on cached and live features
        return dict(maps=[m.contiguous() for m in maps], sam_embed=sam_embed.contiguous())

    def classifier(self, classes: Sequence[str]) -> dict:
        """The text classifier of one class list: per synonym the
        prompt-ensembled unit-norm text embedding, then the void embedding."""
        names, owner = split_synonyms(classes)
        for name in names:
            if self.text_encoder.num_tokens(name) <= 2:  # only the start and end tokens
                raise ValueError(f'FrozenSeg: class name {name!r} tokenises to nothing; give a '
                                 'name the text encoder can read')
        embeds = self.class_embeds(names)
        if embeds.shape[-1] != self.head.embed_dim:
            raise ValueError(f'FrozenSeg: text features have width {embeds.shape[-1]}, the head '
                             f'expects {self.head.embed_dim}')
        void = F.normalize(self.void_embedding.weight, dim=-1)
        return dict(embeds=torch.cat([embeds.to(void), void]), owner=owner.to(void.device),
                    num_classes=len(classes))

    # -- forward -----------------------------------------------------------
    def _forward(self, inputs: Dict, data_samples: Optional[List[FusionDataSample]] = None):
        img = inputs['img']
        feats = self.extract_feat(img, data_samples)
        return self.head(feats['maps'], feats['sam_embed'])

    def loss(self, inputs: Dict, data_samples: List[FusionDataSample]) -> Dict[str, Tensor]:
        img = inputs['img']
        feats = self.extract_feat(img, data_samples)
        gts = self._loss_targets(data_samples, img.device)
        built = {}
        classifiers = [self._classifier_once(built, self.train_classes or self.classes_of(s))
                       for s in data_samples]
        metas = self._metas(data_samples, img)  # not inside head.loss(...): see extract_feat
        return self.head.loss(feats['maps'], feats['sam_embed'], classifiers, gts, metas)

    # torch.compile: excluded, per-sample targets whose labels map through Python dicts of names.
    @torch.compiler.disable
    def _loss_targets(self, data_samples: List[FusionDataSample],
                      device: torch.device) -> List[InstanceData]:
        gts = []
        for sample in data_samples:
            classes = self.classes_of(sample)
            gt = self.gt_segments(sample, classes)
            if self.train_classes is not None:
                gt.labels = self._to_train_labels(gt.labels, classes, sample)
            gts.append(gt.to(device))
        return gts

    def _classifier_once(self, built: dict, classes: Sequence[str]) -> dict:
        """:meth:`classifier` of ``classes``, built once per distinct list in
        ``built`` (a batch usually shares one list)."""
        names = tuple(classes)
        if names not in built:
            built[names] = self.classifier(names)
        return built[names]

    def _to_train_labels(self, labels: Tensor, classes: Sequence[str],
                         sample: FusionDataSample) -> Tensor:
        index = {name: i for i, name in enumerate(self.train_classes)}
        missing = sorted({classes[i] for i in labels.tolist() if classes[i] not in index})
        if missing:
            raise ValueError(f'FrozenSeg: {sample.metainfo.get("img_path")} has segments of '
                             f'{missing}, which are not in train_classes')
        return torch.tensor([index[classes[i]] for i in labels.tolist()], dtype=torch.long)

    def out_of_vocab_logits(self, clip_map: Tensor, mask_logits: Tensor, classes: Sequence[str],
                            image: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """CLIP's own classification of each of one image's masks (by
        ``oov_source``; ``image``: the 0-255 RGB image, for ``'box_crop'``):
        (Q, C) logits (max over synonyms; CLIP's temperature) and (Q,) valid
        flags."""
        logits, valid = clip_oov_logits(
            self.oov_source, self.clip_encoder, self.text_encoder, self.templates, mask_logits,
            classes, self.clip_logit_scale.exp().clamp(max=100), dense_map=clip_map, image=image,
            mean=self.clip_mean[0], std=self.clip_std[0], crop_size=self.clip_crop_size)
        return dict(logits=logits, valid=valid)

    @torch.no_grad()
    def predict(self, inputs: Dict, data_samples: Optional[List[FusionDataSample]] = None,
                task: Optional[str] = None) -> List[FusionDataSample]:
        """``pred_sem_seg``, ``pred_panoptic_seg`` or ``pred_instances`` at
        each sample's ``ori_shape`` (``task``, else ``head.test_cfg.task``)."""
        img = inputs['img']
        data_samples = self.fill_data_samples(data_samples, len(img))
        task = task or self.default_task
        if task not in SEG_TASKS:
            raise ValueError(f'FrozenSeg task must be one of {SEG_TASKS}, got {task!r}')
        feats = self.extract_feat(img, data_samples)
        out = self.head(feats['maps'], feats['sam_embed'])
        mask_logits = out['mask_logits'][-1]
        cls_logits, flags, built = [], [], {}
        for b, sample in enumerate(data_samples):
            classes = self.classes_of(sample)
            classifier = self._classifier_once(built, classes)
            logits = self.head.class_logits(out['cls_embeds'][-1][b], classifier['embeds'],
                                            classifier['owner'], classifier['num_classes'])
            if self.ensemble is not None:
                oov = self.out_of_vocab_logits(feats['maps'][-1][b], mask_logits[b], classes,
                                               img[b])
                logits = self.ensemble(logits, oov['logits'], classes, oov['valid'])
            cls_logits.append(logits)
            flags.append(self.thing_flags_of(sample, classes))
            if not sample.metainfo.get('classes'):  # so drawings can name the labels
                sample.set_metainfo(dict(classes=list(classes)))
        metas = self._metas(data_samples, img)  # not inside a call's arguments: see extract_feat
        results = self.head.postprocessor(task, cls_logits, mask_logits, metas, flags)
        for sample, result in zip(data_samples, results):
            for key, value in result.items():
                setattr(sample, key, value)
        return data_samples
