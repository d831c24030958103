import textwrap
import zlib
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmengine.dist import master_only
from mmengine.visualization import Visualizer

from mmfusion.registry import VISUALIZERS
from mmfusion.structures import FusionDataSample

Color = Tuple[int, int, int]


@VISUALIZERS.register_module()
class FusionVisualizer(Visualizer):
    """The one mmfusion visualizer: draws whatever a data sample carries.

    - ``pred_sem_seg``: filled with ``alpha``. When the sample's metainfo has
      ``classes`` (open-vocabulary models: labels index that list, every
      label is a class) each class gets a colour derived from its name and
      its name is written on it; otherwise label 0 is background and never
      drawn, colours come from ``palette``.
    - ``pred_panoptic_seg`` (``label + id * INSTANCE_OFFSET``) and
      ``pred_instances`` (masks with ``score >= pred_score_thr``): filled
      segments with class names (and scores).
    - ``pred_caption``, the referring sentence (metainfo ``text``) and ranked
      retrieval candidates (metainfo ``texts`` + ``pred_retrieval_scores``):
      written in the top-left corner.
    - ``gt_sem_seg``: outlined.

    Args:
        palette: colour per class index (RGB) for label maps without class
            names. Taken from the dataset's ``metainfo`` when set.
        alpha: opacity of filled predictions.
        min_label_area: regions smaller than this share of the image are
            filled but not labelled (their names would hide the picture).
    """

    def __init__(self,
                 name: str = 'visualizer',
                 palette: Optional[Sequence[Color]] = None,
                 alpha: float = 0.5,
                 gt_color: Color = (0, 255, 0),
                 min_label_area: float = 0.005,
                 **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        self.palette = [tuple(c) for c in palette] if palette else None
        self.alpha = alpha
        self.gt_color = gt_color
        self.min_label_area = min_label_area

    # -- colours and names -------------------------------------------------
    def _class_color(self, index: int) -> Color:
        palette = (self.palette or (self.dataset_meta or {}).get('palette')
                   or [(0, 0, 0), (255, 64, 64)])
        return tuple(palette[index % len(palette)])

    @staticmethod
    def _name_color(name: str, jitter: int = 0) -> Color:
        """A bright colour fixed by the class name (same class, same colour
        in every image); ``jitter`` varies it for instances of one class."""
        rng = np.random.RandomState((zlib.crc32(name.encode()) + 7919 * jitter) % 2**32)
        return tuple(int(c) for c in rng.randint(64, 256, 3))

    def _class_names(self, data_sample: FusionDataSample) -> Optional[List[str]]:
        names = data_sample.metainfo.get('classes') or (self.dataset_meta or {}).get('classes')
        return list(names) if names else None

    @staticmethod
    def _name_of(names: Optional[List[str]], label: int) -> str:
        return names[label] if names is not None and 0 <= label < len(names) else str(label)

    # -- drawing helpers ---------------------------------------------------
    def _fill(self, out: np.ndarray, region: np.ndarray, color: Color) -> None:
        out[region] = (1 - self.alpha) * out[region] + self.alpha * np.array(color, np.float32)

    @staticmethod
    def _inner_point(region: np.ndarray) -> Tuple[int, int]:
        """(x, y) of the region pixel farthest from its border: a label there
        stays on the region even for concave shapes."""
        dist = cv2.distanceTransform(np.pad(region, 1).astype(np.uint8), cv2.DIST_L2, 3)
        y, x = np.unravel_index(dist.argmax(), dist.shape)
        return int(x) - 1, int(y) - 1

    def _draw_sem_seg_fill(self, image: np.ndarray, seg: np.ndarray) -> np.ndarray:
        out = image.astype(np.float32)
        for index in np.unique(seg):
            if index == 0:
                continue
            self._fill(out, seg == index, self._class_color(int(index)))
        return out.clip(0, 255).astype(np.uint8)

    def _draw_named_sem_seg(self, image: np.ndarray, seg: np.ndarray,
                            names: List[str], labels: list) -> np.ndarray:
        out = image.astype(np.float32)
        for index in np.unique(seg):
            region = seg == index
            name = self._name_of(names, int(index))
            self._fill(out, region, self._name_color(name))
            labels.append((name, self._inner_point(region), region.sum()))
        return out.clip(0, 255).astype(np.uint8)

    def _draw_panoptic(self, image: np.ndarray, pan: np.ndarray, names: Optional[List[str]],
                       labels: list) -> np.ndarray:
        out = image.astype(np.float32)
        void = len(names) if names is not None else None
        for segment in np.unique(pan):
            label, instance = int(segment % INSTANCE_OFFSET), int(segment // INSTANCE_OFFSET)
            if label == void:
                continue
            region = pan == segment
            name = self._name_of(names, label)
            self._fill(out, region, self._name_color(name, instance))
            labels.append((name, self._inner_point(region), region.sum()))
        return out.clip(0, 255).astype(np.uint8)

    def _draw_instances(self, image: np.ndarray, instances, names: Optional[List[str]],
                        score_thr: float, labels: list) -> np.ndarray:
        out = image.astype(np.float32)
        keep = instances.scores >= score_thr
        masks = self._resize(instances.masks[keep].float(), image.shape[:2]).bool().numpy()
        outlines = []
        for k, (label, score) in enumerate(zip(instances.labels[keep].tolist(),
                                                instances.scores[keep].tolist())):
            if not masks[k].any():
                continue
            name = self._name_of(names, int(label))
            color = self._name_color(name, k + 1)
            self._fill(out, masks[k], color)
            contours, _ = cv2.findContours(masks[k].astype(np.uint8), cv2.RETR_EXTERNAL,
                                           cv2.CHAIN_APPROX_NONE)
            outlines.append((contours, color))
            labels.append((f'{name} {score:.2f}', self._inner_point(masks[k]), masks[k].sum()))
        out = out.clip(0, 255).astype(np.uint8)
        for contours, color in outlines:  # outlines separate touching instances
            cv2.drawContours(out, contours, -1, color, thickness=1)
        return out

    @staticmethod
    def _draw_prompts(image: np.ndarray, prompts, scale_factor: Sequence[float]) -> np.ndarray:
        """SAM prompts (model-input pixels) at the image's size: boxes in
        white, foreground points green, background points red."""
        out = image.copy()
        sx, sy = scale_factor[:2]
        radius = max(2, image.shape[0] // 100)
        for box, has_box in zip(prompts.boxes.tolist(), prompts.has_box.tolist()):
            if has_box:
                x1, y1, x2, y2 = box
                cv2.rectangle(out, (round(x1 / sx), round(y1 / sy)),
                              (round(x2 / sx) - 1, round(y2 / sy) - 1), (255, 255, 255), 1)
        if 'points' in prompts:
            for (x, y), label in zip(prompts.points.reshape(-1, 2).tolist(),
                                     prompts.point_labels.reshape(-1).tolist()):
                if label in (0, 1):
                    color = (0, 220, 0) if label == 1 else (230, 0, 0)
                    cv2.circle(out, (round(x / sx), round(y / sy)), radius, color, -1)
                    cv2.circle(out, (round(x / sx), round(y / sy)), radius, (255, 255, 255), 1)
        return out

    def _draw_sem_seg_outline(self, image: np.ndarray, seg: np.ndarray) -> np.ndarray:
        out = image.copy()
        contours, _ = cv2.findContours((seg > 0).astype(np.uint8), cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, contours, -1, self.gt_color, thickness=max(1, image.shape[0] // 128))
        return out

    @staticmethod
    def _title_of(data_sample: FusionDataSample) -> List[str]:
        """Lines of text describing the sample's language predictions."""
        lines = []
        if 'pred_caption' in data_sample:
            lines.append(str(data_sample.pred_caption))
        if 'pred_text' in data_sample:  # a transcript (ASR)
            lines.append(str(data_sample.pred_text))
        if 'pred_retrieval_scores' in data_sample:
            texts = data_sample.metainfo.get('texts') or []
            scores = data_sample.pred_retrieval_scores.tolist()
            for k in sorted(range(len(scores)), key=lambda i: -scores[i]):
                text = texts[k] if k < len(texts) else f'#{k}'
                lines.append(f'{scores[k]:.2f} {text}')
        elif isinstance(data_sample.metainfo.get('text'), str) and 'pred_sem_seg' in data_sample:
            lines.append(data_sample.metainfo['text'])  # referring sentence
        return lines

    def _draw_texts(self, image: np.ndarray, labels: list, title: List[str]) -> np.ndarray:
        if not labels and not title:
            return image
        min_area = self.min_label_area * image.shape[0] * image.shape[1]
        labels = [(text, xy) for text, xy, area in labels if area >= min_area]
        self.set_image(image)
        height, width = image.shape[:2]
        font_size = max(6, int(min(height, width) / 24))
        box = dict(facecolor='black', alpha=0.6, pad=0.5, edgecolor='none')
        for text, (x, y) in labels:
            # Keep centred labels inside the picture (width estimated from the font size).
            half = min(width / 2, 0.35 * font_size * len(text))
            x = min(max(x, half), width - half)
            self.draw_texts(text, np.array([x, y]), font_sizes=font_size, colors='white',
                            vertical_alignments='center', horizontal_alignments='center',
                            bboxes=box)
        if title:
            chars = max(10, int(width / (0.8 * font_size)))
            wrapped = '\n'.join(textwrap.fill(line, chars) for line in title)
            self.draw_texts(wrapped, np.array([2, 2]), font_sizes=font_size, colors='white',
                            bboxes=box)
        return self.get_image()

    # -- entry point -------------------------------------------------------
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
                       step: int = 0,
                       pred_score_thr: float = 0.3) -> np.ndarray:
        """Draw ``data_sample`` over ``image`` (RGB, HxWx3 uint8).

        Predictions are filled, ground truth is outlined, so both read in one
        picture. Writes ``out_file`` (PNG) when given, else adds the image to
        the visualizer's backends.
        """
        drawn = image
        labels, title = [], []
        if data_sample is not None:
            names = self._class_names(data_sample)
            if draw_pred and 'pred_panoptic_seg' in data_sample:
                pan = self._seg_at(data_sample.pred_panoptic_seg.sem_seg, image)
                drawn = self._draw_panoptic(drawn, pan, names, labels)
            if draw_pred and 'pred_instances' in data_sample \
                    and 'masks' in data_sample.pred_instances:
                drawn = self._draw_instances(drawn, data_sample.pred_instances, names,
                                             pred_score_thr, labels)
            if draw_pred and 'pred_sem_seg' in data_sample:
                seg = self._seg_at(data_sample.pred_sem_seg.data, image)
                if data_sample.metainfo.get('classes'):
                    drawn = self._draw_named_sem_seg(drawn, seg, names, labels)
                else:
                    drawn = self._draw_sem_seg_fill(drawn, seg)
            if draw_pred and 'prompts' in data_sample:
                drawn = self._draw_prompts(drawn, data_sample.prompts,
                                           data_sample.metainfo.get('scale_factor', (1.0, 1.0)))
            if draw_pred:
                title = self._title_of(data_sample)
            if draw_gt and 'gt_sem_seg' in data_sample:
                drawn = self._draw_sem_seg_outline(drawn, self._seg_at(data_sample.gt_sem_seg.data,
                                                                       image))
        drawn = self._draw_texts(drawn, labels, title)
        self.set_image(drawn)
        if show:
            self.show(drawn, win_name=name, wait_time=wait_time)
        if out_file is not None:
            cv2.imwrite(out_file, cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
        else:
            self.add_image(name, drawn, step)
        return drawn

    @staticmethod
    def _resize(maps: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
        """(N, h, w) maps -> (N, *size), nearest (labels and ids stay exact)."""
        maps = maps.detach().cpu()
        if tuple(maps.shape[-2:]) == tuple(size):
            return maps
        return F.interpolate(maps[None].double(), size=tuple(size), mode='nearest')[0] \
            .to(maps.dtype)

    @classmethod
    def _seg_at(cls, seg: torch.Tensor, image: np.ndarray) -> np.ndarray:
        """A (1, h, w) label/id map at the image's size, as int64."""
        return cls._resize(seg.reshape(1, *seg.shape[-2:]).long(), image.shape[:2])[0].numpy()
