import numpy as np
import pytest
from PIL import Image

from mmfusion.datasets.transforms import LoadImageFromFile


@pytest.mark.parametrize('ext', ['png', 'jpg'])
def test_truncated_image_names_the_file(tmp_path, ext):
    full = tmp_path / f'full.{ext}'
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 48, 3), np.uint8)).save(full)
    data = full.read_bytes()
    truncated = tmp_path / f'truncated.{ext}'
    truncated.write_bytes(data[:len(data) // 2])
    assert LoadImageFromFile()(dict(img_path=str(full)))['img'].shape == (48, 48, 3)
    with pytest.raises(ValueError, match=f'truncated.{ext}'):
        LoadImageFromFile()(dict(img_path=str(truncated)))
