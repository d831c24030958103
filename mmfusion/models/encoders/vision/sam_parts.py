"""SAM's prompt encoder and mask decoder (``segment_anything``'s own modules)
behind the one freezing mechanism of :class:`BaseEncoder`, so that any part of
a SAM can be frozen, partially trained or LoRA-tuned by config."""
from typing import Dict, Mapping, Optional, Tuple, Union

from torch import Tensor

from mmfusion.models.encoders.base_encoder import BaseEncoder
from mmfusion.utils import load_state_dict_file, load_strict, read_weights
from mmfusion.utils.dependency import require

from .sam_image import SAMImageEncoder

Checkpoint = Union[str, Mapping[str, Tensor], None]


_OFFICIAL_DECODER = dict(embed_dim=256, mlp_dim=2048, num_heads=8, iou_head_hidden_dim=256)

#: Sizes of the whole model. ``vit_b/l/h`` are ``segment_anything.build_sam``'s;
#: ``tiny`` keeps the architecture at CPU scale (patch 8 so that small images
#: still give a 12 x 12 token grid, decoder width 64).
SAM_MODEL_ARCHS: Dict[str, dict] = {
    'vit_b': dict(image_encoder='vit_b', **_OFFICIAL_DECODER),
    'vit_l': dict(image_encoder='vit_l', **_OFFICIAL_DECODER),
    'vit_h': dict(image_encoder='vit_h', **_OFFICIAL_DECODER),
    'tiny': dict(image_encoder=dict(embed_dim=96, depth=4, num_heads=3, global_attn_indexes=(1, 3),
                                    patch_size=8, window_size=6, out_chans=64),
                 embed_dim=64, mlp_dim=256, num_heads=4, iou_head_hidden_dim=64),
}


class SAMPromptEncoder(BaseEncoder):
    """``segment_anything``'s ``PromptEncoder`` (points, boxes, mask logits ->
    sparse and dense prompt embeddings).

    Args:
        embed_dim: prompt embedding width (= the mask decoder's width).
        image_embedding_size: the image encoder's token grid side.
        input_image_size: the image encoder's input side.
        mask_in_chans: hidden channels of the mask-prompt downscaling convs.
        checkpoint: a bare ``PromptEncoder`` state dict (or its file); loaded
            strictly before freezing.
        **kwargs: :class:`BaseEncoder` options; ``frozen`` defaults to False.
    """

    def __init__(self, embed_dim: int, image_embedding_size: int, input_image_size: int,
                 mask_in_chans: int = 16, checkpoint: Checkpoint = None,
                 frozen: bool = False, **kwargs) -> None:
        super().__init__(frozen=frozen, **kwargs)
        modeling = require('segment_anything.modeling', 'SAMPromptEncoder', 'segment-anything')
        self.prompt_encoder = modeling.PromptEncoder(
            embed_dim=embed_dim,
            image_embedding_size=(image_embedding_size, image_embedding_size),
            input_image_size=(input_image_size, input_image_size),
            mask_in_chans=mask_in_chans)
        if checkpoint is not None:
            path, state_dict = read_weights(checkpoint)
            load_strict(self.prompt_encoder, state_dict, path, type(self).__name__,
                        hint=f'configured embed_dim={embed_dim}, grid {image_embedding_size}')
        self._apply_freeze()

    def forward(self, points: Optional[Tuple[Tensor, Tensor]], boxes: Optional[Tensor],
                masks: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        """Upstream ``PromptEncoder.forward``: (N, T, C) sparse and (N, C, h, w)
        dense embeddings. Coordinates are in input-image pixels."""
        return self.prompt_encoder(points=points, boxes=boxes, masks=masks)

    def get_dense_pe(self) -> Tensor:
        """The (1, C, h, w) positional encoding of the image-embedding grid."""
        return self.prompt_encoder.get_dense_pe()


class SAMMaskDecoder(BaseEncoder):
    """``segment_anything``'s ``MaskDecoder`` with its ``TwoWayTransformer``.

    Args:
        transformer_dim: token width.
        depth, mlp_dim, num_heads: of the two-way transformer.
        num_multimask_outputs: masks per prompt in multimask mode (3).
        iou_head_depth, iou_head_hidden_dim: the IoU prediction MLP.
        checkpoint: a bare ``MaskDecoder`` state dict (or its file).
        **kwargs: :class:`BaseEncoder` options; ``frozen`` defaults to False.
    """

    def __init__(self, transformer_dim: int = 256, depth: int = 2, mlp_dim: int = 2048,
                 num_heads: int = 8, num_multimask_outputs: int = 3, iou_head_depth: int = 3,
                 iou_head_hidden_dim: int = 256, checkpoint: Checkpoint = None,
                 frozen: bool = False, **kwargs) -> None:
        super().__init__(frozen=frozen, **kwargs)
        modeling = require('segment_anything.modeling', 'SAMMaskDecoder', 'segment-anything')
        self.num_multimask_outputs = num_multimask_outputs
        self.mask_decoder = modeling.MaskDecoder(
            transformer_dim=transformer_dim,
            transformer=modeling.TwoWayTransformer(
                depth=depth, embedding_dim=transformer_dim, mlp_dim=mlp_dim, num_heads=num_heads),
            num_multimask_outputs=num_multimask_outputs,
            iou_head_depth=iou_head_depth,
            iou_head_hidden_dim=iou_head_hidden_dim)
        if checkpoint is not None:
            path, state_dict = read_weights(checkpoint)
            load_strict(self.mask_decoder, state_dict, path, type(self).__name__,
                        hint=f'configured transformer_dim={transformer_dim}, mlp_dim={mlp_dim}')
        self._apply_freeze()

    def forward(self, image_embeddings: Tensor, image_pe: Tensor, sparse: Tensor, dense: Tensor,
                multimask_output: bool) -> Tuple[Tensor, Tensor]:
        """Decode N prompts, each against its own image.

        Args:
            image_embeddings: (N, C, h, w), one image embedding per prompt
                (objects of several images in one call), or (1, C, h, w)
                shared by all prompts as upstream takes it.
            image_pe: (1, C, h, w) from :meth:`SAMPromptEncoder.get_dense_pe`.
            sparse, dense: the prompt encoder's outputs for the N prompts.
            multimask_output: return the 3 multimask outputs instead of the
                single-mask output.

        Returns:
            low-res mask logits (N, M, 4h, 4w) and predicted IoUs (N, M).
        """
        if image_embeddings.shape[0] == 1:
            return self.mask_decoder(image_embeddings, image_pe, sparse, dense, multimask_output)
        # Upstream (segment-anything 1.0) repeats one image's embedding for all
        # N prompts and then adds the dense prompt embedding. Passing a zero
        # image and folding the per-prompt image embedding into the dense
        # embedding gives exactly the same sum while reusing upstream's decoder
        # unchanged for objects of different images in one batch.
        return self.mask_decoder(image_embeddings.new_zeros((1, ) + image_embeddings.shape[1:]),
                                 image_pe, sparse, dense + image_embeddings, multimask_output)


def split_sam_checkpoint(state_dict: Mapping[str, Tensor]) -> Dict[str, Dict[str, Tensor]]:
    """An official ``sam_vit_*.pth`` state dict (``image_encoder.*``,
    ``prompt_encoder.*``, ``mask_decoder.*``) or an mmfusion :class:`SAM`
    checkpoint (the same with each part one level deeper, e.g.
    ``image_encoder.image_encoder.*``) -> the bare state dict of each part.

    Raises:
        KeyError: a part is absent, or keys belong to none of the parts.
    """
    parts: Dict[str, Dict[str, Tensor]] = {}
    unknown = []
    for key, value in state_dict.items():
        part, _, rest = key.partition('.')
        if part not in ('image_encoder', 'prompt_encoder', 'mask_decoder'):
            unknown.append(key)
            continue
        if rest.startswith(part + '.'):  # mmfusion's wrapper level
            rest = rest[len(part) + 1:]
        parts.setdefault(part, {})[rest] = value
    missing = {'image_encoder', 'prompt_encoder', 'mask_decoder'} - set(parts)
    if missing or unknown:
        raise KeyError(f'not a SAM checkpoint: missing parts {sorted(missing)}, '
                       f'keys of no part {unknown[:5]}')
    return parts


def build_sam_parts(arch: str, img_size: int, checkpoint: Optional[str] = None, owner: str = 'SAM',
                    image_encoder: Optional[dict] = None, prompt_encoder: Optional[dict] = None,
                    mask_decoder: Optional[dict] = None
                    ) -> Tuple[SAMImageEncoder, SAMPromptEncoder, SAMMaskDecoder]:
    """The three parts of a SAM of size ``arch`` (a key of
    :data:`SAM_MODEL_ARCHS`), each loaded strictly from ``checkpoint`` (an
    official ``sam_vit_*.pth`` or an mmfusion SAM checkpoint) before its
    freezing options (``image_encoder``/``prompt_encoder``/``mask_decoder``:
    :class:`BaseEncoder` keyword arguments) apply. ``owner`` names the model
    in errors."""
    if arch not in SAM_MODEL_ARCHS:
        raise ValueError(f'{owner}: unknown arch {arch!r}; choose one of {sorted(SAM_MODEL_ARCHS)}')
    spec = SAM_MODEL_ARCHS[arch]
    parts: Dict[str, Dict[str, Tensor]] = {}
    if checkpoint is not None:
        try:
            parts = split_sam_checkpoint(load_state_dict_file(checkpoint))
        except KeyError as e:
            raise KeyError(f'{owner}: {checkpoint}: {e.args[0]}') from e
    encoder = SAMImageEncoder(arch=spec['image_encoder'], img_size=img_size,
                              checkpoint=parts.get('image_encoder'), **(image_encoder or {}))
    if encoder.out_chans != spec['embed_dim']:
        raise ValueError(f'{owner}: the image encoder neck width must equal the decoder width')
    prompts = SAMPromptEncoder(
        embed_dim=spec['embed_dim'], image_embedding_size=img_size // encoder.patch_size,
        input_image_size=img_size, checkpoint=parts.get('prompt_encoder'),
        **(prompt_encoder or {}))
    decoder = SAMMaskDecoder(
        transformer_dim=spec['embed_dim'], mlp_dim=spec['mlp_dim'], num_heads=spec['num_heads'],
        iou_head_hidden_dim=spec['iou_head_hidden_dim'], checkpoint=parts.get('mask_decoder'),
        **(mask_decoder or {}))
    return encoder, prompts, decoder
