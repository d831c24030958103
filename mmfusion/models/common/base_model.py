"""The base of every mmfusion model: one ``forward(mode)`` switch and the
setup all of them share."""
from typing import Dict, List, Optional, Sequence, Union

from mmengine.model import BaseModel
from torch import Tensor

from mmfusion.registry import MODELS
from mmfusion.structures import FusionDataSample

MODES = ('loss', 'predict', 'tensor')


class FusionBaseModel(BaseModel):
    """mmengine's ``BaseModel`` with what every mmfusion model repeats.

    * ``data_preprocessor`` configs are built with mmfusion's ``MODELS``, so a
      model does not depend on the current default scope.
    * :meth:`forward` dispatches ``mode='loss'`` to :meth:`loss`,
      ``'predict'`` to :meth:`predict` and ``'tensor'`` to :meth:`_forward`;
      a subclass implements the modes it has.
    * :meth:`fill_data_samples` gives a prediction somewhere to write when
      the caller passed no data samples.
    """

    def __init__(self, data_preprocessor: Union[dict, None] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if isinstance(data_preprocessor, dict):
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)

    def forward(self, inputs: Dict, data_samples: Optional[List[FusionDataSample]] = None,
                mode: str = 'tensor') -> Union[Dict[str, Tensor], List[FusionDataSample], object]:
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self._forward(inputs, data_samples)
        raise ValueError(f'invalid mode {mode!r}; expected one of {MODES}')

    def loss(self, inputs: Dict, data_samples: Optional[List[FusionDataSample]] = None
             ) -> Dict[str, Tensor]:
        raise NotImplementedError(f'{type(self).__name__} does not train (mode "loss")')

    def predict(self, inputs: Dict, data_samples: Optional[List[FusionDataSample]] = None
                ) -> List[FusionDataSample]:
        raise NotImplementedError(f'{type(self).__name__} does not predict (mode "predict")')

    def _forward(self, inputs: Dict, data_samples: Optional[List[FusionDataSample]] = None):
        raise NotImplementedError(f'{type(self).__name__} has no mode "tensor"')

    @staticmethod
    def fill_data_samples(data_samples: Optional[Sequence[FusionDataSample]],
                          batch_size: int) -> List[FusionDataSample]:
        """``data_samples`` as a list, or ``batch_size`` empty samples when None."""
        if data_samples is None:
            return [FusionDataSample() for _ in range(batch_size)]
        return list(data_samples)
