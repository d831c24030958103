import os.path as osp
from typing import Optional, Sequence

import mmcv
from mmengine.fileio import get
from mmengine.hooks import Hook
from mmengine.runner import Runner
from mmengine.utils import mkdir_or_exist

from mmfusion.registry import HOOKS
from mmfusion.structures import FusionDataSample


@HOOKS.register_module()
class FusionVisualizationHook(Hook):
    """Draw test predictions with the runner's visualizer.

    Off unless ``draw=True`` (``tools/test.py --show-dir`` turns it on). With
    ``out_dir`` set, every ``interval``-th test image is written there as
    ``<image name>.png``; otherwise drawings go to the visualizer backends.
    """

    def __init__(self, draw: bool = False, interval: int = 1, out_dir: Optional[str] = None,
                 backend_args: Optional[dict] = None) -> None:
        self.draw = draw
        self.interval = interval
        self.out_dir = out_dir
        self.backend_args = backend_args

    def after_test_iter(self, runner: Runner, batch_idx: int, data_batch: dict,
                        outputs: Sequence[FusionDataSample]) -> None:
        if not self.draw:
            return
        visualizer = runner.visualizer
        for i, sample in enumerate(outputs):
            index = batch_idx * len(outputs) + i
            if index % self.interval:
                continue
            img_path = sample.img_path
            image = mmcv.imfrombytes(get(img_path, backend_args=self.backend_args), channel_order='rgb')
            name = osp.splitext(osp.basename(img_path))[0]
            out_file = osp.join(runner.work_dir, runner.timestamp, self.out_dir, f'{name}.png') \
                if self.out_dir else None
            if out_file:
                mkdir_or_exist(osp.dirname(out_file))
            visualizer.add_datasample(name, image, sample, out_file=out_file, step=index)
