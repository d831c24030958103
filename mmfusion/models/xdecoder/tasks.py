"""The tasks X-Decoder predicts: the shared segmentation tasks, then its own."""
from mmfusion.models.common.mask import SEG_TASKS

TASKS = SEG_TASKS + ('referring', 'caption', 'retrieval')
