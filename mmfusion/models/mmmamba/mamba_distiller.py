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

    * ``stage=1`` / ``2``: per-layer MSE between each Mamba-2 mixer and the
      teacher attention, both fed the teacher's input to that layer (the
      student's mixers are run alone on it), averaged over the Mamba-2 layers
      and scaled by ``mse_factor``: each logged ``loss_mse.<layer>`` is that
      layer's MSE times ``mse_factor`` divided by the number of Mamba-2
      layers. ``mse_target='heads'`` (the official form) compares the
      per-head outputs before the output projections (the gated SSM output
      against softmax(QK^T)V), ``'output'`` the layer outputs after them.
    * ``stage=3``: end-to-end ``KL(teacher || student)`` of the next-token
      distributions at the caption positions.

    Which student parameters train is ``trainable``: glob patterns over the
    student's parameter names (``layers.*.ssm.dt_bias``...); the paper's
    stage 1 trains the new SSM parameters (:attr:`Mamba2Mixer.NEW_PARAMS`),
    stage 2 adds the seeded q/k/v projections, stage 3 trains the official
    list (:attr:`Mamba2Mixer.STAGE3_PARAMS`: no ``o_proj``, ``dt_bias`` or
    ``A_log``). A pattern that matches nothing is an error. Prediction and
    evaluation use the student.

    Args:
        teacher (dict): ``MultimodalCausalLM`` config (``mixer='attention'``).
        student (dict): Overrides of the teacher config for the student.
        stage (int): 1, 2 or 3.
        trainable (list[str]): Student parameter patterns that train.
        teacher_checkpoint (str, optional): The trained teacher (an mmengine
            checkpoint of the teacher config); ``None`` keeps its
            initialisation (tests only).
        teacher_prefix (str, optional): Key prefix of the teacher in that file.
        teacher_format (str): ``'mmfusion'`` (a checkpoint of the teacher
            config) or ``'internlm2'``: an InternLM2 language model in the
            official layout (:meth:`MultimodalCausalLM.load_official`; the
            patch embedding keeps its initialisation), e.g. HoVLE's with
            ``teacher_prefix='language_model.'``.
        mse_target (str): ``'heads'`` (official, default) or ``'output'``
            (stages 1 and 2).
        mse_factor (float): Scale of the stage 1/2 loss (official 1000).
    """

    #: Official stage 1/2 loss (``src/trainer/distill_every_layer.py``:
    #: ``OurTrainer.compute_loss``: ``MSE(y_pred, _y_true)`` of the per-head
    #: outputs before ``o_proj``, mean over layers, times ``mse_factor: 1000``
    #: of ``configs/experiment/distill_stage{1,2}_mmMamba.yaml``).
    MSE_TARGETS = ('heads', 'output')

    def __init__(self,
                 teacher: dict,
                 student: dict,
                 stage: int,
                 trainable: Sequence[str],
                 teacher_checkpoint: Optional[str] = None,
                 teacher_prefix: Optional[str] = None,
                 teacher_format: str = 'mmfusion',
                 mse_target: str = 'heads',
                 mse_factor: float = 1000.0,
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
        if teacher_format not in ('mmfusion', 'internlm2'):
            raise ValueError("teacher_format must be 'mmfusion' or 'internlm2', got "
                             f'{teacher_format!r}')
        self.teacher_format = teacher_format
        if mse_target not in self.MSE_TARGETS:
            raise ValueError(f'mse_target must be one of {self.MSE_TARGETS}, got {mse_target!r}')
        self.stage = stage
        self.mse_target = mse_target
        self.mse_factor = float(mse_factor)
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
        if self.teacher_checkpoint is not None and self.teacher_format == 'internlm2':
            path = self.teacher_checkpoint
            self.teacher.load_official(load_state_dict_file(path), path, self.teacher_prefix)
        elif self.teacher_checkpoint is not None:
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
        """Teacher logits and, in stages 1 and 2, for each student Mamba
        layer the teacher attention's input (B, L, dim) and its target: the
        attention output (B, L, dim), or with ``mse_target='heads'`` the
        heads' outputs entering ``o_proj`` (B, L, dim, heads concatenated)."""
        io, hooks = {}, []
        for i in (self.student.mamba_layers if self.stage in (1, 2) else []):
            attn = self.teacher.layers[i].attn

            def record_input(module, args, i=i):
                io[i] = (args[0], None)

            def record_target(module, args, output, i=i):
                io[i] = (io[i][0], args[0] if self.mse_target == 'heads' else output)
            hooks.append(attn.register_forward_pre_hook(record_input))
            target_module = attn.o_proj if self.mse_target == 'heads' else attn
            hooks.append(target_module.register_forward_hook(record_target))
        try:
            logits = self.teacher.forward_sequence(img, ids, mask)
        finally:
            for h in hooks:
                h.remove()
        return logits, io

    def loss(self, inputs: Dict, data_samples: List[FusionDataSample]) -> Dict[str, Tensor]:
        img = inputs['img']
        ids, mask = self.student.caption_ids(data_samples, 'random')
        t_logits, io = self._run_teacher(img, ids, mask)
        if self.stage in (1, 2):
            valid = ~F.pad(mask, (self.student.patch_embed.num_patches, 0), value=False)
            losses = {}
            for i, (x, target) in io.items():
                ssm = self.student.layers[i].ssm
                pred = ssm.heads_output(x) if self.mse_target == 'heads' else ssm(x)
                mse = F.mse_loss(pred[valid], target[valid])
                losses[f'loss_mse.{i}'] = mse * (self.mse_factor / len(io))
            return losses
        s_logits = self.student.forward_sequence(img, ids, mask)
        target = ids[:, 1:] != PAD  # positions predicting a real token
        t_logp = F.log_softmax(t_logits[:, :-1][target], -1)
        s_logp = F.log_softmax(s_logits[:, :-1][target], -1)
        kl = F.kl_div(s_logp, t_logp, log_target=True, reduction='batchmean')
        agree = (s_logp.argmax(-1) == t_logp.argmax(-1)).float().mean()
        return dict(loss_kl=kl, agreement=agree.detach())
