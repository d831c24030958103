from mmengine.structures import BaseDataElement, InstanceData, PixelData


class FusionDataSample(BaseDataElement):
    """The data interface between mmfusion's components, for every modality.

    Typed fields (a setter checks the type, as in mmseg's ``SegDataSample``):

    - ``gt_sem_seg`` / ``pred_sem_seg`` (:obj:`PixelData`): ``data`` is a
      ``(1, H, W)`` long tensor of class indices. ``pred_sem_seg`` may carry
      ``score`` (the foreground probability) next to it.
    - ``gt_instances`` / ``pred_instances`` (:obj:`InstanceData`).
    - ``gt_panoptic_seg`` (:obj:`PixelData`).
    - ``gt_alpha`` / ``pred_alpha`` (:obj:`PixelData`): mattes in ``[0, 1]``.
    - ``prompts`` (:obj:`InstanceData`): per-object prompts of promptable
      segmentation (``boxes``, ``has_box``, ``points``, ``point_labels``,
      optionally ``mask_inputs``), see ``GeneratePrompts``.

    Free-form fields such as ``gt_text``, ``pred_text``, ``gt_caption``,
    ``gt_label``, ``pred_score`` and ``gt_points_label`` are plain attributes.
    Metainfo holds ``img_path``, ``ori_shape``, ``img_shape``, ``sample_idx``...
    """

    def _typed(name, dtype):  # noqa: N805 - builds properties at class creation
        private = f'_{name}'

        def fget(self):
            return getattr(self, private)

        def fset(self, value):
            self.set_field(value, private, dtype=dtype)

        def fdel(self):
            delattr(self, private)

        return property(fget, fset, fdel, doc=f'{dtype.__name__} field ``{name}``')

    gt_sem_seg = _typed('gt_sem_seg', PixelData)
    pred_sem_seg = _typed('pred_sem_seg', PixelData)
    gt_panoptic_seg = _typed('gt_panoptic_seg', PixelData)
    gt_instances = _typed('gt_instances', InstanceData)
    pred_instances = _typed('pred_instances', InstanceData)
    gt_alpha = _typed('gt_alpha', PixelData)
    pred_alpha = _typed('pred_alpha', PixelData)
    prompts = _typed('prompts', InstanceData)
    del _typed
