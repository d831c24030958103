"""A plain four-stage ConvNet: the new encoder of docs/new_model.md.

What a backbone owes a decoder of mmfusion's segmentation families (X-Decoder,
FrozenSeg, Mask2Former-style pixel decoders): a tuple of feature maps at
strides 4, 8, 16 and 32 whose channel counts the config's ``in_channels`` lists.
"""
from typing import Sequence, Tuple

from mmengine.model import BaseModule
from torch import Tensor, nn

from mmfusion.registry import MODELS


def conv_block(cin: int, cout: int, stride: int, groups: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
                         nn.GroupNorm(groups, cout), nn.GELU(),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False),
                         nn.GroupNorm(groups, cout), nn.GELU())


@MODELS.register_module()
class ExampleConvNet(BaseModule):
    """Four stages of two 3x3 convolutions (GroupNorm, GELU), the first of
    each strided, after a stride-2 stem.

    Args:
        widths: output channels of the four stages (strides 4, 8, 16, 32).
        groups: GroupNorm groups (must divide every width).
    """

    def __init__(self, widths: Sequence[int] = (16, 32, 64, 128), groups: int = 8,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if len(widths) != 4 or any(w % groups for w in widths):
            raise ValueError(f'ExampleConvNet: widths must be 4 channel counts divisible by '
                             f'groups={groups}, got {tuple(widths)}')
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, stride=2, padding=1, bias=False),
                                  nn.GroupNorm(groups, widths[0]), nn.GELU())
        ins = [widths[0], *widths[:-1]]
        self.stages = nn.ModuleList(conv_block(cin, cout, 2, groups)
                                    for cin, cout in zip(ins, widths))

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        x = self.stem(x)
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return tuple(outs)
