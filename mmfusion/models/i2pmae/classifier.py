"""Point-cloud shape classification: a point encoder and the Point-MAE /
I2P-MAE fine-tuning head.

Module names follow the official fine-tuning models (``norm``,
``cls_head_finetune.{0,1,4,5,8}``; the encoder is ``encoder``, the official
``h_encoder`` of I2P-MAE or the bare Point-MAE ``PointTransformer``), so
converted official fine-tuned checkpoints load strictly (see
``tools/model_converters/i2pmae_to_mmfusion.py`` and
``tools/model_converters/pointmae_to_mmfusion.py``).
"""
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmfusion.models.common import FusionBaseModel
from mmfusion.registry import MODELS
from mmfusion.structures import FusionDataSample

#: How the classifier pools the (normalised) top tokens itself when it has a ``norm``.
TOKEN_POOLS = ('max', 'mean', 'max+mean', 'mean,max')


def smooth_cross_entropy(logits: Tensor, labels: Tensor, eps: float) -> Tensor:
    """Cross-entropy against smoothed one-hot targets, as the official
    Point-BERT / Point-MAE / I2P-MAE ``smooth_loss``: the true class gets
    ``1 - eps`` and each of the other ``n - 1`` classes ``eps / (n - 1)``.

    (torch's ``label_smoothing=eps`` instead spreads ``eps`` over all ``n``
    classes, the true one included: ``1 - eps + eps / n`` on the true class.)
    """
    if eps == 0:
        return F.cross_entropy(logits, labels)
    n = logits.shape[1]
    target = torch.full_like(logits, eps / (n - 1), dtype=torch.float32)
    target.scatter_(1, labels[:, None], 1.0 - eps)
    return -(target * F.log_softmax(logits.float(), dim=1)).sum(1).mean()


def _top_width(encoder: nn.Module) -> int:
    dims = encoder.embed_dims
    return int(dims[-1]) if isinstance(dims, (list, tuple)) else int(dims)


@MODELS.register_module()
class PointCloudClassifier(FusionBaseModel):
    """Shape classification with a point-cloud encoder and an MLP head.

    Features:

    - with a top ``norm`` (the I2P-MAE fine-tuning model): the encoder's
      top-level ``tokens`` go through a LayerNorm and are pooled by the
      encoder's ``pool`` mode here (``'max+mean'``: the sum, the official
      ModelNet40 head's input; ``'mean,max'``: the concatenation, the
      ScanObjectNN head's); use it with ``I2PMAEEncoder(norms=False)``;
    - without (Point-MAE's ``PointTransformer``): the encoder's ``pooled``
      output (``PointMAEEncoder(cls_token=True, pool='cls+max')`` gives the
      official [cls, max] feature).

    Head ``cls_head_finetune``: Linear(in, 256), BN, ReLU, Dropout,
    Linear(256, 256), BN, ReLU, Dropout, Linear(256, num_classes).

    Loss: cross-entropy, with the official label smoothing when
    ``label_smoothing > 0`` (see :func:`smooth_cross_entropy`; the official
    ModelNet40 fine-tuning uses 0.2, ScanObjectNN none). ``loss`` also
    returns the batch accuracy ``acc`` (percent, logged only).

    Encoder weights load through the encoder's own ``checkpoint`` /
    ``prefix``; the encoders are frozen by default (``BaseEncoder``), so a
    fine-tuning config sets ``frozen=False``.

    Args:
        encoder: ``I2PMAEEncoder`` / ``PointMAEEncoder`` (or any encoder
            returning ``tokens``/``pooled`` and having ``embed_dims``,
            ``pool``) config.
        num_classes: number of classes.
        norm: LayerNorm on the top tokens before pooling; ``None``: when the
            encoder has no per-level norms of its own (``I2PMAEEncoder`` with
            ``norms=False``).
        in_channels: the head's input width; default from the encoder.
        hidden_channels: width of the two hidden layers (official 256).
        dropout: dropout after each hidden layer (official 0.5).
        label_smoothing: ``eps`` of the official smoothed loss.
    """

    def __init__(self,
                 encoder: dict,
                 num_classes: int,
                 norm: Optional[bool] = None,
                 in_channels: Optional[int] = None,
                 hidden_channels: int = 256,
                 dropout: float = 0.5,
                 label_smoothing: float = 0.0,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if num_classes < 2:
            raise ValueError(f'PointCloudClassifier num_classes must be >= 2, got {num_classes}')
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f'PointCloudClassifier label_smoothing must be in [0, 1), got '
                             f'{label_smoothing}')
        self.encoder = MODELS.build(encoder) if isinstance(encoder, dict) else encoder
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing
        self.pool = getattr(self.encoder, 'pool', None)
        if norm is None:
            norm = hasattr(self.encoder, 'encoder_norms') and self.encoder.encoder_norms is None
        if norm:
            if self.pool not in TOKEN_POOLS:
                raise ValueError(f'PointCloudClassifier with norm=True pools the encoder tokens '
                                 f'itself by the encoder pool mode, one of {TOKEN_POOLS}; the '
                                 f'encoder has pool={self.pool!r}')
            width = _top_width(self.encoder)
            self.norm = nn.LayerNorm(width)
            feat_channels = width * (2 if self.pool == 'mean,max' else 1)
        else:
            self.norm = None
            feat_channels = getattr(self.encoder, 'out_channels', None)
            if feat_channels is None:
                width = _top_width(self.encoder)
                feat_channels = width * (2 if self.pool in ('cls+max', 'mean,max') else 1)
        if in_channels is not None and in_channels != feat_channels:
            raise ValueError(f'PointCloudClassifier in_channels={in_channels} but the encoder '
                             f'feature (pool {self.pool!r}) has {feat_channels} channels')
        self.in_channels = feat_channels
        h = hidden_channels
        self.cls_head_finetune = nn.Sequential(
            nn.Linear(feat_channels, h), nn.BatchNorm1d(h), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(h, h), nn.BatchNorm1d(h), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(h, num_classes))
        for m in self.cls_head_finetune:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    # -- features ------------------------------------------------------------
    def extract_feat(self, inputs: Dict) -> Tensor:
        """(B, in_channels): the head's input."""
        out = self.encoder(inputs['points'], inputs.get('points_lengths'))
        if self.norm is None:
            return out['pooled']
        x = self.norm(out['tokens'])
        valid = out.get('valid')
        top_valid = valid[-1] if isinstance(valid, (list, tuple)) else None
        if top_valid is not None and not bool(top_valid.all()):
            mx = x.masked_fill(~top_valid[..., None], float('-inf')).max(1)[0]
            mean = (x * top_valid[..., None]).sum(1) / top_valid.sum(1, keepdim=True)
        else:
            mx, mean = x.max(1)[0], x.mean(1)
        if self.pool == 'max':
            return mx
        if self.pool == 'mean':
            return mean
        if self.pool == 'max+mean':
            return mx + mean
        return torch.cat([mean, mx], dim=-1)

    def _forward(self, inputs: Dict, data_samples=None) -> Tensor:
        """(B, num_classes) logits."""
        return self.cls_head_finetune(self.extract_feat(inputs))

    # -- modes ---------------------------------------------------------------
    @staticmethod
    def _labels(data_samples: Optional[List[FusionDataSample]], device) -> Tensor:
        if not data_samples or any('gt_label' not in s for s in data_samples):
            raise KeyError('PointCloudClassifier needs data_samples with gt_label (a dataset '
                           'that sets "gt_label", packed by PackFusionInputs)')
        return torch.stack([torch.as_tensor(s.gt_label).reshape(()) for s in data_samples]
                           ).long().to(device)

    def loss(self, inputs: Dict, data_samples: Optional[List[FusionDataSample]] = None
             ) -> Dict[str, Tensor]:
        logits = self._forward(inputs, data_samples)
        labels = self._labels(data_samples, logits.device)
        loss = smooth_cross_entropy(logits, labels, self.label_smoothing)
        acc = (logits.detach().argmax(1) == labels).float().mean() * 100
        return dict(loss_cls=loss, acc=acc)

    def predict(self, inputs: Dict, data_samples: Optional[List[FusionDataSample]] = None
                ) -> List[FusionDataSample]:
        logits = self._forward(inputs, data_samples)
        data_samples = self.fill_data_samples(data_samples, logits.shape[0])
        for sample, score in zip(data_samples, logits.float().softmax(-1)):
            sample.pred_score = score
            sample.pred_label = score.argmax()
        return data_samples
