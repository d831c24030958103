"""mmMamba's three-stage distillation of the transformer teacher into a
Mamba-2 student."""
import fnmatch
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mmfusion.models.common.base_model import FusionBaseModel
from mmfusion.models.common.sequence import PAD
from mmfusion.registry import MODELS
from mmfusion.structures import FusionDataSample
from mmfusion.utils.checkpoint import load_state_dict_file, load_strict, select_prefix


@MODELS.register_module()
class MambaDistiller(FusionBaseModel):
    """mmMamba's three-stage distillation of a :class:`MultimodalCausalLM`
    teacher into a Mamba-2 student of the same sizes.

    The student config is the teacher's with ``student`` overriding it
    (``dict(mixer='mamba2', attention_layers=[...])``), so both have the
    same widths by construction. :meth:`init_weights` loads the trained
    teacher from ``teacher_checkpoint`` and seeds the student from it (later
    stages then start from the previous stage through ``load_from``). The
    teacher is frozen and runs once per batch, without gradients.

    * ``stage=1`` / ``2``: per-layer MSE between each Mamba-2 mixer's output
      and the teacher attention output, both fed the teacher's input to that
      layer (the student's mixers are run alone on it). The loss is their
      mean: each logged ``loss_mse.<layer>`` is that layer's MSE divided by
      the number of Mamba-2 layers.
    * ``stage=3``: end-to-end ``KL(teacher || student)`` of the next-token
      distributions at the caption positions.

    Which student parameters train is ``trainable``: glob patterns over the
    student's parameter names (``layers.*.ssm.dt_bias``...); the paper's
    stage 1 trains the new SSM parameters (:attr:`Mamba2Mixer.NEW_PARAMS`),
    stages 2 and 3 all Mamba-2 mixer parameters. A pattern that matches
    nothing is an error. Prediction and evaluation use the student.

    Args:
        teacher (dict): ``MultimodalCausalLM`` config (``mixer='attention'``).
        student (dict): Overrides of the teacher config for the student.
        stage (int): 1, 2 or 3.
        trainable (list[str]): Student parameter patterns that train.
        teacher_checkpoint (str, optional): The trained teacher (an mmengine
            checkpoint of the teacher config); ``None`` keeps its
            initialisation (tests only).
        teacher_prefix (str, optional): Key prefix of the teacher in that file.
    """

    def __init__(self,
                 teacher: dict,
                 student: dict,
                 stage: int,
                 trainable: Sequence[str],
                 teacher_checkpoint: Optional[str] = None,
                 teacher_prefix: Optional[str] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if stage not in (1, 2, 3):
            raise ValueError(f'stage must be 1, 2 or 3, got {stage!r}')
        teacher = {k: v for k, v in teacher.items() if k != 'data_preprocessor'}
        self.teacher = MODELS.build(teacher)
        self.student = MODELS.build({**teacher, **student})
        if self.teacher.mamba_layers or not self.student.mamba_layers:
            raise ValueError("the teacher must be all attention and the student have Mamba-2 "
                             "layers (student=dict(mixer='mamba2', ...))")
        self.stage = stage
        self.teacher_checkpoint = teacher_checkpoint
        self.teacher_prefix = teacher_prefix
        self.trainable = list(trainable)
        self._set_trainable()

    def _set_trainable(self) -> None:
        self.teacher.requires_grad_(False)
        names = [n for n, _ in self.student.named_parameters()]
        unmatched = [p for p in self.trainable if not fnmatch.filter(names, p)]
        if unmatched or not self.trainable:
            raise ValueError(f'trainable patterns {unmatched or self.trainable} match no student '
                             f'parameter; names look like {names[:4]}')
        for name, param in self.student.named_parameters():
            param.requires_grad_(any(fnmatch.fnmatch(name, p) for p in self.trainable))

    def init_weights(self) -> None:
        super().init_weights()
        if self.teacher_checkpoint is not None:
            path = self.teacher_checkpoint
            state = select_prefix(load_state_dict_file(path), self.teacher_prefix, path,
                                  type(self).__name__)
            state = {k: v for k, v in state.items() if not k.startswith('data_preprocessor.')}
            load_strict(self.teacher, state, path, type(self).__name__,
                        hint='teacher_checkpoint must be a checkpoint of the teacher config')
        self.student.seed_from(self.teacher)

    def train(self, mode: bool = True) -> 'MambaDistiller':
        super().train(mode)
        self.teacher.eval()
        return self

    def predict(self, inputs: Dict, data_samples: Optional[List[FusionDataSample]] = None
                ) -> List[FusionDataSample]:
        return self.student.predict(inputs, data_samples)

    def _forward(self, inputs: Dict, data_samples: Optional[List[FusionDataSample]] = None
                 ) -> Tensor:
        return self.student._forward(inputs, data_samples)

    @torch.no_grad()
    def _run_teacher(self, img: Tensor, ids: Tensor, mask: Tensor
                     ) -> Tuple[Tensor, Dict[int, Tuple[Tensor, Tensor]]]:
        """Teacher logits and, in stages 1 and 2, each student Mamba layer's
        teacher attention (input, output)."""
        io, hooks = {}, []
        for i in (self.student.mamba_layers if self.stage in (1, 2) else []):
            def record(module, args, output, i=i):
                io[i] = (args[0], output)
            hooks.append(self.teacher.layers[i].attn.register_forward_hook(record))
        try:
            logits = self.teacher.forward_sequence(img, ids, mask)
        finally:
            for h in hooks:
                h.remove()
        return logits, io

    def loss(self, inputs: Dict, data_samples: List[FusionDataSample]) -> Dict[str, Tensor]:
        img = inputs['img']
        ids, mask = self.student.tokenize(self.student.pick_captions(data_samples, 'random'))
        t_logits, io = self._run_teacher(img, ids, mask)
        if self.stage in (1, 2):
            valid = ~F.pad(mask, (self.student.patch_embed.num_patches, 0), value=False)
            losses = {}
            for i, (x, target) in io.items():
                pred = self.student.layers[i].ssm(x)
                losses[f'loss_mse.{i}'] = F.mse_loss(pred[valid], target[valid]) / len(io)
            return losses
        s_logits = self.student.forward_sequence(img, ids, mask)
        target = ids[:, 1:] != PAD  # positions predicting a real token
        t_logp = F.log_softmax(t_logits[:, :-1][target], -1)
        s_logp = F.log_softmax(s_logits[:, :-1][target], -1)
        kl = F.kl_div(s_logp, t_logp, log_target=True, reduction='batchmean')
        agree = (s_logp.argmax(-1) == t_logp.argmax(-1)).float().mean()
        return dict(loss_kl=kl, agreement=agree.detach())
