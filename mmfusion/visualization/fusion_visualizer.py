from typing import Optional, Sequence, Tuple

import cv2
import numpy as np
from mmengine.dist import master_only
from mmengine.visualization import Visualizer

from mmfusion.registry import VISUALIZERS
from mmfusion.structures import FusionDataSample


@VISUALIZERS.register_module()
class FusionVisualizer(Visualizer):
    """The one mmfusion visualizer: draws whatever a data sample carries.

    Today: semantic masks (``pred_sem_seg`` filled with ``alpha``, ``gt_sem_seg``
    as an outline). Each later modality (mattes, transcripts, point clouds)
    adds a ``_draw_*`` method called from :meth:`add_datasample`.

    Args:
        palette: colour per class index (RGB); class 0 is background and
            never drawn. Taken from the dataset's ``metainfo`` when set.
        alpha: opacity of filled predictions.
    """

    def __init__(self,
                 name: str = 'visualizer',
                 palette: Optional[Sequence[Tuple[int, int, int]]] = None,
                 alpha: float = 0.5,
                 gt_color: Tuple[int, int, int] = (0, 255, 0),
                 **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        self.palette = [tuple(c) for c in palette] if palette else None
        self.alpha = alpha
        self.gt_color = gt_color

    def _class_color(self, index: int) -> Tuple[int, int, int]:
        palette = (self.palette or (self.dataset_meta or {}).get('palette')
                   or [(0, 0, 0), (255, 64, 64)])
        return tuple(palette[index % len(palette)])

    def _draw_sem_seg_fill(self, image: np.ndarray, seg: np.ndarray) -> np.ndarray:
        out = image.astype(np.float32)
        for index in np.unique(seg):
            if index == 0:
                continue
            region = seg == index
            out[region] = (1 - self.alpha) * out[region] + self.alpha * np.array(self._class_color(int(index)))
        return out.clip(0, 255).astype(np.uint8)

    def _draw_sem_seg_outline(self, image: np.ndarray, seg: np.ndarray) -> np.ndarray:
        out = image.copy()
        contours, _ = cv2.findContours((seg > 0).astype(np.uint8), cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, contours, -1, self.gt_color, thickness=max(1, image.shape[0] // 128))
        return out

    @master_only
    def add_datasample(self,
                       name: str,
                       image: np.ndarray,
                       data_sample: Optional[FusionDataSample] = None,
                       draw_gt: bool = True,
                       draw_pred: bool = True,
                       show: bool = False,
                       wait_time: float = 0,
                       out_file: Optional[str] = None,
                       step: int = 0) -> np.ndarray:
        """Draw ``data_sample`` over ``image`` (RGB, HxWx3 uint8).

        Predictions are filled, ground truth is outlined, so both read in one
        picture. Writes ``out_file`` (PNG) when given, else adds the image to
        the visualizer's backends.
        """
        drawn = image
        if data_sample is not None:
            if draw_pred and 'pred_sem_seg' in data_sample:
                drawn = self._draw_sem_seg_fill(drawn, self._seg_at(data_sample.pred_sem_seg, image))
            if draw_gt and 'gt_sem_seg' in data_sample:
                drawn = self._draw_sem_seg_outline(drawn, self._seg_at(data_sample.gt_sem_seg, image))
        self.set_image(drawn)
        if show:
            self.show(drawn, win_name=name, wait_time=wait_time)
        if out_file is not None:
            cv2.imwrite(out_file, cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
        else:
            self.add_image(name, drawn, step)
        return drawn

    @staticmethod
    def _seg_at(pixel_data, image: np.ndarray) -> np.ndarray:
        seg = pixel_data.data.squeeze(0).cpu().numpy().astype(np.uint8)
        if seg.shape != image.shape[:2]:
            seg = cv2.resize(seg, image.shape[1::-1], interpolation=cv2.INTER_NEAREST)
        return seg
