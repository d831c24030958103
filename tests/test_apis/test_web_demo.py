"""The web demo's tab functions, without a browser (test_web_demo_browser.py
drives the page itself)."""
import os.path as osp
import sys

import numpy as np
import pytest

sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))),
                            'demo'))
import web_demo  # noqa: E402


def test_text_fields_parse_or_say_what_is_expected():
    assert web_demo.parse_names(' person, sky,,rocket\n') == ['person', 'sky', 'rocket']
    with pytest.raises(ValueError, match='at least one'):
        web_demo.parse_names(' , ')
    assert web_demo.parse_box('1, 2, 30, 40') == [1.0, 2.0, 30.0, 40.0]
    for bad in ('1,2,3', '5,5,1,10', 'a,b,c,d'):
        with pytest.raises(ValueError, match='x1,y1,x2,y2'):
            web_demo.parse_box(bad)


def test_gradio_rgb_images_reach_the_inferencers_as_bgr():
    rgb = np.random.default_rng(0).integers(0, 255, (4, 5, 3), dtype=np.uint8)
    assert np.array_equal(web_demo.rgb_to_bgr(rgb), rgb[..., ::-1])
    rgba = np.concatenate([rgb, np.full((4, 5, 1), 255, np.uint8)], axis=2)
    assert np.array_equal(web_demo.rgb_to_bgr(rgba), rgb[..., ::-1])
    with pytest.raises(ValueError, match='upload an image'):
        web_demo.rgb_to_bgr(None)


def test_segmentation_tab_equals_the_inferencer():
    from skimage import data

    from mmfusion.apis import OpenVocabSegInferencer, find_root, model_info
    cache = web_demo.ModelCache(random_weights=True)
    image = data.astronaut()
    overlay, pred = web_demo.segment(cache, image, 'person, sky', 'semantic')
    inferencer = cache.get('segmentation')
    assert isinstance(inferencer, OpenVocabSegInferencer)
    assert model_info(web_demo.MODELS['segmentation'].model)['Config'] in \
        osp.relpath(inferencer.cfg.filename, find_root())
    direct = inferencer(np.ascontiguousarray(image[..., ::-1]), task='semantic',
                        texts=['person', 'sky'])
    assert np.array_equal(overlay, direct['visualization'][0])
    assert pred == direct['predictions'][0]
    assert cache.get('segmentation') is inferencer  # built once


def test_every_tab_names_an_indexed_model_its_inferencer_runs():
    import mmfusion.apis as apis
    names = set(apis.list_models())
    for tab, spec in web_demo.MODELS.items():
        assert spec.model in names, tab
        assert issubclass(getattr(apis, spec.inferencer), apis.base_inferencer.FusionInferencer)


def test_missing_checkpoint_is_a_message_on_the_page(monkeypatch):
    import gradio as gr
    # An index entry whose weights are never on this machine (the official Focal-T).
    monkeypatch.setitem(web_demo.MODELS, 'medical', web_demo.TabModel(
        'OpenVocabSegInferencer', 'xdecoder_focalt_zero-shot_ade20k-semantic'))
    run = web_demo.guarded(web_demo.medical, web_demo.ModelCache())
    with pytest.raises(gr.Error) as err:
        run(np.zeros((8, 8, 3), np.uint8), progress=lambda *a, **k: None)
    assert err.value.message.startswith('xdecoder_focalt_zero-shot_ade20k-semantic: ')
    assert 'nothing is downloaded' in err.value.message
