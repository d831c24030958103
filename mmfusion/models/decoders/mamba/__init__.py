from .mixer import Mamba2Mixer
from .ssd import mamba_ssm_available, segment_sum, ssd_chunked, ssd_kernel, ssd_recurrent, ssd_step

__all__ = ['Mamba2Mixer', 'segment_sum', 'ssd_chunked', 'ssd_recurrent', 'ssd_step', 'ssd_kernel',
           'mamba_ssm_available']
