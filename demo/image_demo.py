"""Segment one image and write an overlay:
``python demo/image_demo.py CONFIG CHECKPOINT IMAGE --out-file OUT.png``."""
import argparse
import os.path as osp

import mmcv
from mmengine.utils import mkdir_or_exist

from mmfusion.apis import inference_model, init_model
from mmfusion.registry import VISUALIZERS
from mmfusion.utils import register_all_modules


def main() -> None:
    parser = argparse.ArgumentParser(description='mmfusion image demo')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('image', help='image file')
    parser.add_argument('--out-file', default='outputs/demo.png', help='overlay PNG to write')
    parser.add_argument('--device', default='cpu', help='e.g. cpu, cuda:0')
    parser.add_argument('--alpha', type=float, default=0.5, help='opacity of the predicted mask')
    args = parser.parse_args()

    register_all_modules()
    model = init_model(args.config, args.checkpoint, device=args.device)
    result = inference_model(model, args.image)

    visualizer = VISUALIZERS.build(dict(type='FusionVisualizer', name='image_demo', alpha=args.alpha))
    visualizer.dataset_meta = model.dataset_meta
    mkdir_or_exist(osp.dirname(osp.abspath(args.out_file)))
    image = mmcv.imread(args.image, channel_order='rgb')
    visualizer.add_datasample('demo', image, result, draw_gt=False, out_file=args.out_file)
    fg = result.pred_sem_seg.data.float().mean().item()
    print(f'wrote {args.out_file} (predicted foreground: {fg:.1%} of the image)')


if __name__ == '__main__':
    main()
