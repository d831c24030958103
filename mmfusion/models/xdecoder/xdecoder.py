"""X-Decoder (Zou et al., 2023): open-vocabulary semantic, instance and
panoptic segmentation with class names embedded by a text encoder, referring
segmentation, captioning and image-text retrieval from one decoder."""
import functools
import logging
import random
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.structures import InstanceData
from torch import Tensor

from mmfusion.models.common.base_model import FusionBaseModel
from mmfusion.models.common.open_vocab_seg import OpenVocabSegMixin
from mmfusion.models.encoders.feature_cache import sample_ids_of
from mmfusion.registry import MODELS
from mmfusion.structures import FusionDataSample

from .tasks import SEG_TASKS, TASKS


@MODELS.register_module()
class XDecoder(OpenVocabSegMixin, FusionBaseModel):
    """Backbone -> :class:`XDecoderHead`, classes scored against text embeddings.

    Class names of an image come from its data sample's metainfo
    ``classes`` (a user-given list) or else the model's ``classes``; each
    image is classified among its own list, so images with different lists
    can share a batch. Thing/stuff names (``thing_classes``, likewise per
    sample or from the model) decide which ground-truth segments are built
    from ``gt_sem_seg`` and how panoptic/instance outputs treat a class;
    without them every class is a thing.

    Training targets are Mask2Former's panoptic ones: ``gt_instances`` (thing
    segments, labels into the image's class list) plus one segment per stuff
    label of ``gt_sem_seg``. A sample with only ``gt_sem_seg`` (semantic
    datasets) gets one segment per label.

    Args:
        backbone (dict): Any registered encoder/backbone returning a dict with
            ``maps`` or a tuple of maps, high to low resolution.
        head (dict): :class:`XDecoderHead` config (``embed_dim`` defaults to
            the text encoder's).
        text_encoder (dict): e.g. ``OpenCLIPTextEncoder`` (frozen by default)
            with ``embed_class_names``.
        templates (str | list[str]): Prompt templates for class names.
        classes (list[str], optional): Default class names (e.g. the
            dataset's ``metainfo['classes']``).
        thing_classes (list[str], optional): Which of them are things.
        caption_vocab (list[str], optional): Texts whose tokens form the
            caption output vocabulary (plus the start and end tokens); by
            default the text encoder's whole vocabulary. A small domain (e.g.
            SynthShapes) trains much faster on its own few tokens.
        neck (dict, optional): Maps the backbone's maps to the pixel
            decoder's levels, e.g. ``mmseg.MultiLevelNeck`` turning a plain
            ViT's single stride into a pyramid.
        clip_ensemble (dict, optional): ``CLIPMaskEnsemble`` arguments: a
            frozen CNN CLIP classifies every predicted mask and its scores
            are ensembled with the head's (FrozenSeg's inference ensemble;
            alpha 0.4 for seen, beta 0.8 for unseen classes) in semantic,
            instance and panoptic prediction. Needs the data preprocessor's
            mean/std to recover the pixels.
        data_preprocessor (dict, optional): e.g. ``MultiModalDataPreprocessor``.
        no_object_text (str): The sentence whose text embedding is the
            no-object class when the head's ``no_object='text'`` (official:
            ``'A background in coco.'``, embedded without templates).
        project_text_tokens (bool): Grounding and caption inputs are the text
            encoder's token features times its text projection (official:
            ``token_x @ lang_proj``) rather than the features alone.
        class_name_suffixes (list[str]): Removed from class names before
            they are embedded (official: ``'-other'``, ``'-merged'``,
            ``'-stuff'``, so COCO's ``'wall-other-merged'`` reads ``'wall'``).
        caption_input (str): What a caption token enters the decoder as:
            ``'embedding'`` (its token embedding) or ``'encoder'`` (official:
            the text encoder's causal features of the caption so far, at
            that token).

    Tasks beyond segmentation use the head's branches (``grounding``,
    ``caption``, ``retrieval``) and these inputs:

    - referring: one sentence per image, from ``inputs['text']`` (packed by
      the pipeline, e.g. ``RefCocoDataset`` or ``SampleReferringExpression``)
      or ``metainfo['text']``; trained against ``gt_ref_mask``. Sentences
      longer than the text encoder's context are cut to it (open_clip keeps
      the end token) with a warning naming the sentence.
    - caption: trained on a random one of ``gt_caption`` per image and
      step; predicted by greedy decoding into ``pred_caption``.
    - retrieval: the image query against the same caption (contrastive);
      predicted as ``pred_image_embedding``, ``pred_text_embeddings`` of
      ``metainfo['texts']`` (else the image's ``gt_caption``) and their
      softmax ``pred_retrieval_scores``.
    """
    # Grounding, captioning and retrieval run only on batches that carry
    # sentences or captions, so DDP must look for unused parameters
    # (read by mmfusion.utils.dist.prepare_launcher).
    find_unused_parameters = True
    # Task -> the head branch it needs (segmentation needs none).
    _BRANCHES = dict(referring='grounding', caption='caption', retrieval='retrieval')
    # Task -> the method that predicts it.
    _TASK_PREDICTORS = dict(semantic='_predict_segmentation', instance='_predict_segmentation',
                            panoptic='_predict_segmentation', referring='_predict_referring',
                            caption='_predict_caption', retrieval='_predict_retrieval')

    def __init__(self,
                 backbone: dict,
                 head: dict,
                 text_encoder: dict,
                 templates: Union[str, Sequence[str]] = 'simple',
                 classes: Optional[Sequence[str]] = None,
                 thing_classes: Optional[Sequence[str]] = None,
                 caption_vocab: Optional[Sequence[str]] = None,
                 neck: Optional[dict] = None,
                 clip_ensemble: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 no_object_text: str = 'A background in coco.',
                 project_text_tokens: bool = False,
                 caption_input: str = 'embedding',
                 class_name_suffixes: Sequence[str] = (),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if caption_input not in ('embedding', 'encoder'):
            raise ValueError(f"caption_input must be 'embedding' or 'encoder', got "
                             f'{caption_input!r}')
        self.no_object_text = no_object_text
        self.project_text_tokens = project_text_tokens
        self.caption_input = caption_input
        self.class_name_suffixes = tuple(class_name_suffixes)
        self.clip_ensemble = (MODELS.build(dict(type='CLIPMaskEnsemble', **clip_ensemble))
                              if clip_ensemble is not None else None)
        self.backbone = MODELS.build(backbone)
        self.neck = MODELS.build(neck) if neck is not None else None
        self.text_encoder = MODELS.build(text_encoder)
        head = dict(head)
        head.setdefault('embed_dim', self.text_encoder.embed_dim)
        if head.get('grounding') is not None or head.get('caption') is not None:
            head.setdefault('text_width', self.text_token_width())
        self.head = MODELS.build(head)
        self.init_class_names(templates, classes, thing_classes)
        self._warned_long: set = set()
        if self.head.caption_cfg is not None:
            tokenizer = self.text_encoder.tokenizer
            self.start_id, self.end_id = tokenizer.sot_token_id, tokenizer.eot_token_id
            vocab_size = self.text_encoder.token_embedding_layer.num_embeddings
            if caption_vocab is None:
                ids = torch.arange(vocab_size)
            else:
                words = {t for text in caption_vocab for t in tokenizer.encode(text)}
                ids = torch.tensor(sorted(words | {self.start_id, self.end_id}))
            # Token id -> row of the output vocabulary (-1: not in it).
            index = torch.full((vocab_size,), -1, dtype=torch.long)
            index[ids] = torch.arange(len(ids))
            self.register_buffer('caption_vocab_ids', ids, persistent=False)
            self.register_buffer('caption_vocab_index', index, persistent=False)

    def text_token_width(self) -> int:
        """Width of the grounding / caption token inputs."""
        if self.project_text_tokens:
            return self.text_encoder.embed_dim
        return self.text_encoder.token_embedding_layer.embedding_dim

    def project_tokens(self, tokens: Tensor) -> Tensor:
        """(B, L, width) text features -> the grounding / caption inputs:
        times the text projection with ``project_text_tokens``."""
        if not self.project_text_tokens:
            return tokens
        proj = self.text_encoder.text_projection
        if isinstance(proj, torch.nn.Linear):
            return proj(tokens)
        return tokens @ proj.to(tokens.dtype)

    def no_object_embed(self) -> Tensor:
        """(D,) text embedding of ``no_object_text`` (no templates,
        L2-normalised, as the official ``extract_mean_emb``)."""
        return self.text_encoder.embed_class_names([self.no_object_text], ['{}'])[0]

    def class_embeds(self, classes: Sequence[str]) -> Tensor:
        """(C, D) text embeddings of the class names, without
        ``class_name_suffixes``."""
        names = []
        for name in classes:
            for suffix in self.class_name_suffixes:
                name = name.replace(suffix, '')
            names.append(name)
        return super().class_embeds(names)

    def batch_class_embeds(self, data_samples: Sequence[FusionDataSample]) -> List[Tensor]:
        """Per image its class embeddings, with the no-object text
        embedding appended when the head scores no object by text."""
        embeds = super().batch_class_embeds(data_samples)
        if self.head.no_object != 'text':
            return embeds
        background = self.no_object_embed()
        return [torch.cat([e, background[None].to(e)]) for e in embeds]

    # -- features ----------------------------------------------------------
    def extract_feat(self, img: Tensor,
                     data_samples: Optional[Sequence[FusionDataSample]] = None) -> List[Tensor]:
        """Backbone (+ neck) maps. A frozen mmfusion encoder runs through
        ``forward_cached``, so a ``FeatureCacheHook`` can serve its maps
        (images of one size: cached maps must not depend on batch padding)."""
        if hasattr(self.backbone, 'forward_cached'):
            ids = getattr(self.backbone, 'cache_ids', sample_ids_of)(data_samples)
            out = self.backbone.forward_cached(img, ids, keys=['maps'])
        else:
            out = self.backbone(img)
        maps = list(out['maps'] if isinstance(out, dict) else out)
        return list(self.neck(maps)) if self.neck is not None else maps

    # -- forward -----------------------------------------------------------
    def _forward(self, inputs: Dict, data_samples: Optional[List[FusionDataSample]] = None):
        """The head's decoded outputs of every layer."""
        img = inputs['img']
        samples = self.fill_data_samples(data_samples, len(img))
        feats = self.extract_feat(img, data_samples)
        metas = self._metas(samples, img)  # not inside head(...): see loss
        return self.head(feats, metas)

    @property
    def tasks(self) -> Tuple[str, ...]:
        """The tasks this model predicts: segmentation always, the others
        when the head has their branch."""
        return SEG_TASKS + tuple(task for task, branch in self._BRANCHES.items()
                                 if getattr(self.head, f'{branch}_cfg') is not None)

    @property
    def default_task(self) -> str:
        """What :meth:`predict` runs without a ``task`` (``head.test_cfg``)."""
        return self.head.test_cfg['task']

    # -- text inputs of the grounding / caption / retrieval branches --------
    def sentences_of(self, inputs: Dict, data_samples: Sequence[FusionDataSample]) -> List[str]:
        """One referring sentence per image (``inputs['text']`` or
        ``metainfo['text']``)."""
        texts = inputs.get('text')
        if texts is None:
            texts = [s.metainfo.get('text') for s in data_samples]
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        if len(texts) != len(data_samples):
            raise ValueError(f'referring needs one sentence per image: {len(texts)} '
                             f'sentences for {len(data_samples)} images')
        for text, sample in zip(texts, data_samples):
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f'referring needs a non-empty sentence (inputs["text"] or '
                                 f'metainfo["text"]); image {sample.metainfo.get("img_path")} '
                                 f'has {text!r}')
        return texts

    def embed_sentences(self, sentences: Sequence[str]) -> dict:
        """Grounding inputs: token features, their valid mask and the pooled
        sentence embeddings. Longer sentences than the text encoder's
        context are cut (warned once per sentence)."""
        return self.embed_sentence_ids(self.sentence_ids(sentences))

    def embed_sentence_ids(self, ids: Tensor) -> dict:
        """:meth:`embed_sentences` of :meth:`sentence_ids`."""
        out = self.text_encoder(ids)
        result = dict(tokens=self.project_tokens(out['tokens'].float()), valid=out['mask'],
                      sentence_embeds=out['pooled'].float())
        if self.head.no_object == 'text':
            result['no_object_embed'] = self.no_object_embed().float()
        return result

    # torch.compile: excluded, length warnings and tokenization are Python string work.
    @torch.compiler.disable
    def sentence_ids(self, sentences: Sequence[str]) -> Tensor:
        """Token ids of the referring sentences (cut to the context, warned)."""
        context = self.text_encoder.context_length
        for text in sentences:
            if text not in self._warned_long and self.text_encoder.num_tokens(text) > context:
                self._warned_long.add(text)
                print_log(f'referring sentence "{text}" has {self.text_encoder.num_tokens(text)} '
                          f'tokens; the text encoder reads {context}, so it is cut to its first '
                          f'{context - 2} words/pieces', logger='current', level=logging.WARNING)
        return self.text_encoder.tokenize(list(sentences))

    def caption_inputs(self, captions: Sequence[str]) -> dict:
        """Teacher forcing: token embeddings of ``[start, w1 .. wn]`` and
        targets ``[w1 .. wn, end]`` as output-vocabulary rows (-100 after the
        end). Captions are cut to the head's ``max_len``."""
        ids, targets = self.caption_targets(captions)
        return dict(tokens=self.embed_tokens(ids[:, :-1]), targets=targets,
                    vocab_embeds=self.vocab_embeds())

    # torch.compile: excluded, tokenizes caption strings (and names an unknown one).
    @torch.compiler.disable
    def caption_targets(self, captions: Sequence[str]) -> Tuple[Tensor, Tensor]:
        """Token ids ``[start, w1 .. wn, end]`` (B, L) and their targets
        (B, L - 1) (see :meth:`caption_inputs`)."""
        ids = self.text_encoder.tokenize(list(captions),
                                         context_length=self.head.caption_cfg['max_len'] + 1)
        # Up to the batch's longest caption: the rest is padding (the causal
        # mask makes the result the same, the decoder sequence shorter).
        ends = (ids == self.end_id).float().argmax(1)
        ids = ids[:, :int(ends.max()) + 1]
        targets = self.caption_vocab_index.to(ids.device)[ids[:, 1:]]
        after_end = (ids[:, :-1] == self.end_id).cumsum(1) > 0
        targets[after_end] = -100
        unknown = (targets == -1).any(1)
        if unknown.any():
            bad = [c for c, u in zip(captions, unknown.tolist()) if u][0]
            raise ValueError(f'caption "{bad}" has tokens outside the caption vocabulary '
                             '(model caption_vocab); add its words there')
        return ids, targets

    def embed_tokens(self, ids: Tensor) -> Tensor:
        """(B, T) caption token ids -> (B, T, text_width) decoder inputs:
        token embeddings, or (``caption_input='encoder'``) the text
        encoder's causal features of the prefix (the encoder reads its whole
        context; later positions cannot change earlier ones)."""
        if self.caption_input == 'embedding':
            return self.project_tokens(self.text_encoder.token_embedding_layer(ids).float())
        length = ids.shape[1]
        context = self.text_encoder.context_length
        if length > context:
            raise ValueError(f'{length} caption tokens exceed the text encoder context {context}')
        padded = ids.new_full((ids.shape[0], context), self.text_encoder.pad_id)
        padded[:, :length] = ids
        return self.project_tokens(self.text_encoder(padded)['tokens'][:, :length].float())

    def vocab_embeds(self) -> Tensor:
        """(V, width) output rows: the whole embedding table (no per-step
        gather of every row) or the ``caption_vocab`` rows."""
        table = self.text_encoder.token_embedding_layer.weight
        if len(self.caption_vocab_ids) == len(table):
            return table.float()
        return table[self.caption_vocab_ids].float()

    def embed_texts(self, texts: Sequence[str]) -> Tensor:
        """(K, D) pooled text embeddings (retrieval targets)."""
        return self.text_encoder(self.text_ids(texts))['pooled'].float()

    # torch.compile: excluded, BPE tokenization of strings.
    @torch.compiler.disable
    def text_ids(self, texts: Sequence[str]) -> Tensor:
        return self.text_encoder.tokenize(list(texts))

    # -- training ----------------------------------------------------------
    def loss(self, inputs: Dict, data_samples: List[FusionDataSample]) -> Dict[str, Tensor]:
        """Segmentation losses, plus grounding (samples with ``gt_ref_mask``),
        caption and retrieval (samples with ``gt_caption``) for the head's
        branches; a branch's data must be on every image of the batch or on
        none."""
        img = inputs['img']
        class_embeds = self.batch_class_embeds(data_samples)
        targets = self._loss_targets(inputs, data_samples, img.device)
        extra = {}
        if 'sentence_ids' in targets:
            grounding = self.embed_sentence_ids(targets['sentence_ids'])
            grounding['gt_instances'] = targets['ref_instances']
            extra['grounding'] = grounding
        if 'caption_ids' in targets:
            ids = targets['caption_ids']
            extra['caption'] = dict(tokens=self.embed_tokens(ids[:, :-1]),
                                    targets=targets['caption_targets'],
                                    vocab_embeds=self.vocab_embeds())
        if 'retrieval_ids' in targets:
            extra['retrieval'] = dict(
                text_embeds=self.text_encoder(targets['retrieval_ids'])['pooled'].float(),
                positives=targets['positives'])
        # Calls that break the graph are kept out of other calls' arguments: a bound method left
        # on the stack is a new object every batch, which recompiles under torch.compile.
        feats = self.extract_feat(img, data_samples)
        metas = self._metas(data_samples, img)
        return self.head.loss(feats, class_embeds, targets['gts'], metas, **extra)

    # torch.compile: excluded, the batch's strings (sentences, captions) and per-sample targets,
    # as tensors and InstanceData; a traced frame holding strings would recompile every batch.
    @torch.compiler.disable
    def _loss_targets(self, inputs: Dict, data_samples: List[FusionDataSample],
                      device: torch.device) -> dict:
        """Ground-truth segments (``gts``) and, for the branches with data,
        ``sentence_ids`` / ``ref_instances``, ``caption_ids`` /
        ``caption_targets`` and ``retrieval_ids`` / ``positives``."""
        out = dict(gts=[self.gt_segments(s, self.classes_of(s)).to(device) for s in data_samples])
        if self.head.grounding_cfg is not None and self._all_have(data_samples, 'gt_ref_mask'):
            out['sentence_ids'] = self.sentence_ids(self.sentences_of(inputs, data_samples))
            out['ref_instances'] = [
                InstanceData(labels=torch.zeros(1, dtype=torch.long, device=device),
                             masks=s.gt_ref_mask.data.to(device).bool())
                for s in data_samples]
        wants_captions = self.head.caption_cfg is not None or self.head.retrieval_cfg is not None
        if wants_captions and self._all_have(data_samples, 'gt_caption'):
            captions = [random.choice(list(s.gt_caption)) for s in data_samples]
            if self.head.caption_cfg is not None:
                out['caption_ids'], out['caption_targets'] = self.caption_targets(captions)
            if self.head.retrieval_cfg is not None:
                out['retrieval_ids'] = self.text_ids(captions)
                out['positives'] = torch.tensor([[a == b for b in captions] for a in captions],
                                                device=device)
        return out

    @staticmethod
    def _all_have(data_samples: Sequence[FusionDataSample], key: str) -> bool:
        have = [key in s and not (isinstance(getattr(s, key), (list, tuple))
                                  and not getattr(s, key)) for s in data_samples]
        if any(have) and not all(have):
            missing = [s.metainfo.get('img_path') for s, h in zip(data_samples, have) if not h]
            raise ValueError(f'some images of the batch have {key} and some do not '
                             f'(e.g. {missing[:3]}): a branch trains on all images or none')
        return all(have)

    @torch.no_grad()
    def predict(self, inputs: Dict, data_samples: Optional[List[FusionDataSample]] = None,
                task: Optional[str] = None) -> List[FusionDataSample]:
        """Predict ``task`` (else :attr:`default_task`) at each sample's
        ``ori_shape``: ``pred_sem_seg`` (semantic; referring: 1 = referred),
        ``pred_panoptic_seg``, ``pred_instances``, ``pred_caption`` or the
        retrieval embeddings and scores (see the class docstring)."""
        img = inputs['img']
        data_samples = self.fill_data_samples(data_samples, len(img))
        task = task or self.default_task
        if task not in TASKS:
            raise ValueError(f'X-Decoder task must be one of {TASKS}, got {task!r}')
        if task not in self.tasks:
            raise RuntimeError(f'{task} needs the head\'s {self._BRANCHES[task]} branch; this '
                               f'model predicts {self.tasks}')
        feats, metas = self.extract_feat(img, data_samples), self._metas(data_samples, img)
        results = getattr(self, self._TASK_PREDICTORS[task])(inputs, data_samples, feats, metas,
                                                             task)
        for sample, result in zip(data_samples, results):
            for key, value in result.items():
                setattr(sample, key, value)
        return data_samples

    def _predict_segmentation(self, inputs: Dict, data_samples: Sequence[FusionDataSample],
                              feats: List[Tensor], metas: List[dict], task: str) -> List[dict]:
        classes = [self.classes_of(s) for s in data_samples]
        flags = [self.thing_flags_of(s, c) for s, c in zip(data_samples, classes)]
        refine = None
        if self.clip_ensemble is not None:  # (class logits, mask logits) -> ensembled logits
            refine = functools.partial(self.clip_ensemble, self._pixels(inputs['img']),
                                       classes=classes)
        class_embeds = self.batch_class_embeds(data_samples)  # not inside predict(...): see loss
        results = self.head.predict(feats, class_embeds, metas, flags, task=task,
                                    refine_logits=refine)
        for sample, names in zip(data_samples, classes):
            if not sample.metainfo.get('classes'):  # so drawings can name the labels
                sample.set_metainfo(dict(classes=list(names)))
        return results

    # torch.compile: excluded, reads and tokenizes a sample's candidate texts (strings).
    @torch.compiler.disable
    def _retrieval_ids(self, sample: FusionDataSample) -> Tensor:
        texts = sample.metainfo.get('texts')
        if texts is None and 'gt_caption' in sample:
            texts = sample.gt_caption
        if not texts:
            raise ValueError(f'retrieval needs candidate texts (metainfo["texts"] or '
                             f'gt_caption); image {sample.metainfo.get("img_path")} has none')
        return self.text_ids(texts)

    def _pixels(self, img: Tensor) -> Tensor:
        """0-255 RGB pixels of the normalised batch (for the CLIP ensemble)."""
        preprocessors = getattr(self.data_preprocessor, 'preprocessors', {})
        pre = preprocessors['img'] if 'img' in preprocessors else None
        if pre is None or not getattr(pre, '_enable_normalize', False):
            return img
        return img * pre.std + pre.mean

    def _predict_referring(self, inputs: Dict, data_samples: Sequence[FusionDataSample],
                           feats: List[Tensor], metas: List[dict], task: str) -> List[dict]:
        ids = self._referring_ids(inputs, data_samples)
        grounding = self.embed_sentence_ids(ids)  # not inside predict_referring(...): see loss
        return self.head.predict_referring(feats, metas, grounding)

    # torch.compile: excluded, reads and tokenizes the referring sentences (strings).
    @torch.compiler.disable
    def _referring_ids(self, inputs: Dict, data_samples: Sequence[FusionDataSample]) -> Tensor:
        return self.sentence_ids(self.sentences_of(inputs, data_samples))

    def _predict_caption(self, inputs: Dict, data_samples: Sequence[FusionDataSample],
                         feats: List[Tensor], metas: List[dict], task: str) -> List[dict]:
        ids = self.head.generate_captions(feats, metas, self.embed_tokens, self.vocab_embeds(),
                                          self.caption_vocab_ids, self.start_id, self.end_id)
        return self._caption_results(ids)

    # torch.compile: excluded, decodes token ids to strings.
    @torch.compiler.disable
    def _caption_results(self, ids) -> List[dict]:
        decode = self.text_encoder.tokenizer.decode
        texts = [decode(row).strip() for row in ids]
        if self.head.caption_cfg['cut_at_period']:
            texts = [t.split('.')[0].strip() for t in texts]
        return [dict(pred_caption=t) for t in texts]

    def _predict_retrieval(self, inputs: Dict, data_samples: Sequence[FusionDataSample],
                           feats: List[Tensor], metas: List[dict], task: str) -> List[dict]:
        image_embeds = self.head.predict_image_embeds(feats, metas)
        results = []
        for b, sample in enumerate(data_samples):
            ids = self._retrieval_ids(sample)
            text_embeds = F.normalize(self.text_encoder(ids)['pooled'].float(), dim=-1)
            scores = (self.head.retrieval_scale() * text_embeds @ image_embeds[b]).softmax(-1)
            results.append(dict(pred_image_embedding=image_embeds[b],
                                pred_text_embeddings=text_embeds,
                                pred_retrieval_scores=scores))
        return results
