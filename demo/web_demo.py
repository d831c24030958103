"""A web page with one tab per task, over mmfusion's Inferencers (Gradio).

    python demo/web_demo.py [--port 7860] [--host 127.0.0.1] [--device cpu]
    python demo/web_demo.py --random-weights   # every tab at random init (a quick look, tests)

Each tab loads its model on first use from the model index: the tiny checkpoints
the make targets train (``work_dirs/<config>/iter_N.pth``). A tab whose checkpoint is
missing says which make target writes it. Nothing is downloaded; ``--share`` (a
public Gradio link) is off unless asked for.
"""
import argparse
import os
import os.path as osp
import sys
import threading
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Union

import numpy as np

os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


@dataclass(frozen=True)
class TabModel:
    """A tab's model: which Inferencer runs which model-index entry."""
    inferencer: str
    model: str


# The tiny models the make targets train, one per tab.
MODELS = dict(
    segmentation=TabModel('OpenVocabSegInferencer', 'xdecoder_r18-tiny_2xb8-2300it_synthshapes'),
    referring=TabModel('ReferringSegInferencer', 'xdecoder_r18-tiny_2xb8-2300it_synthshapes'),
    caption=TabModel('CaptionInferencer', 'xdecoder_r18-tiny_2xb8-2300it_synthshapes'),
    caption_mamba=TabModel('MambaCaptionInferencer',
                           'mmmamba-linear_stage3_tiny_1xb32-600it_synthshapes-caption'),
    sam=TabModel('PromptableSegInferencer', 'sam_vit-tiny_1xb8-2600it_synthshapes'),
    matting=TabModel('MattingInferencer', 'semat_sam-tiny_1xb8-1200it_synthmatte'),
    medical=TabModel('MedicalSegInferencer', 'gms_kl-f4-tiny_1xb8-800it_synth-lesion'),
    asr=TabModel('ASRInferencer', 'zipper_asr-rope-noise_frozen-text-tiny_1xb16-1500it_synth-speech'),
    tts=TabModel('TTSInferencer', 'zipper_tts-rope_tiny_1xb16-1500it_synth-speech'),
    pointcloud=TabModel('PointCloudZeroShotInferencer',
                        'zeroshot_i2pmae-tiny_1xb32-300it_synthshapes3d'),
)


class ModelCache:
    """Builds each tab's Inferencer on first use and keeps it.

    Args:
        device: where the models run.
        random_weights: build from the config at random init instead of
            loading the index's checkpoint.
        compile: ``torch.compile`` each model's inference (``True`` or
            options; see ``FusionInferencer``).
    """

    def __init__(self, device: str = 'cpu', random_weights: bool = False,
                 compile: Union[bool, dict] = False) -> None:
        self.device = device
        self.random_weights = random_weights
        self.compile = compile
        self._built: Dict[str, object] = {}
        self._lock = threading.Lock()

    def get(self, tab: str):
        import mmfusion.apis as apis
        from mmfusion.apis import find_root, model_info
        with self._lock:
            if tab not in self._built:
                spec = MODELS[tab]
                cls = getattr(apis, spec.inferencer)
                if self.random_weights:
                    config = osp.join(find_root(), model_info(spec.model)['Config'])
                    self._built[tab] = cls(config, weights=False, device=self.device,
                                           show_progress=False, compile=self.compile)
                else:
                    self._built[tab] = cls(spec.model, device=self.device, show_progress=False,
                                           compile=self.compile)
            return self._built[tab]


def parse_names(text: str, what: str = 'class names') -> List[str]:
    """``'person, sky,rocket'`` -> ``['person', 'sky', 'rocket']`` (refuses an empty list)."""
    names = [t.strip() for t in (text or '').replace('\n', ',').split(',') if t.strip()]
    if not names:
        raise ValueError(f'enter at least one of the {what}, separated by commas')
    return names


def parse_box(text: str) -> List[float]:
    """``'x1, y1, x2, y2'`` in pixels -> four floats with x1 < x2 and y1 < y2."""
    try:
        box = [float(v) for v in (text or '').replace(' ', ',').split(',') if v]
    except ValueError:
        raise ValueError(f'the box must be four numbers x1,y1,x2,y2; got {text!r}') from None
    if len(box) != 4 or box[0] >= box[2] or box[1] >= box[3]:
        raise ValueError(f'the box must be x1,y1,x2,y2 with x1 < x2 and y1 < y2; got {text!r}')
    return box


def rgb_to_bgr(image: Optional[np.ndarray]) -> np.ndarray:
    """A Gradio image (RGB, or RGBA) as the BGR array the Inferencers take."""
    if image is None:
        raise ValueError('upload an image first')
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., 2::-1]).astype(np.uint8)


# -- one function per tab: inputs as Gradio gives them -> outputs --------------
def segment(cache: ModelCache, image, classes: str, task: str):
    out = cache.get('segmentation')(rgb_to_bgr(image), task=task, texts=parse_names(classes))
    return out['visualization'][0], out['predictions'][0]


def refer(cache: ModelCache, image, sentence: str):
    if not (sentence or '').strip():
        raise ValueError('enter a sentence describing one object')
    out = cache.get('referring')(rgb_to_bgr(image), text=sentence.strip())
    return out['visualization'][0]


def caption(cache: ModelCache, image, model: str):
    tab = 'caption_mamba' if model.startswith('mmMamba') else 'caption'
    out = cache.get(tab)(rgb_to_bgr(image))
    return out['predictions'][0]['caption']


def promptable(cache: ModelCache, image, box: str):
    out = cache.get('sam')(rgb_to_bgr(image), boxes=[parse_box(box)])
    return out['visualization'][0]


def matte(cache: ModelCache, image, box: str):
    out = cache.get('matting')(rgb_to_bgr(image), box=parse_box(box), return_datasamples=True)
    alpha = np.asarray(out['predictions'][0].pred_alpha.data.squeeze().cpu())
    return (np.clip(alpha, 0, 1) * 255).astype(np.uint8), out['visualization'][0]


def medical(cache: ModelCache, image):
    out = cache.get('medical')(rgb_to_bgr(image))
    return out['visualization'][0]


def transcribe(cache: ModelCache, audio):
    if audio is None:
        raise ValueError('record or upload some speech first')
    out = cache.get('asr')(tuple(audio))  # (rate, int16 samples)
    return out['predictions'][0]['text']


def speak(cache: ModelCache, text: str):
    if not (text or '').strip():
        raise ValueError('enter a sentence to speak')
    tts = cache.get('tts')
    out = tts(text.strip())
    wave = out['visualization'][0]
    if wave is None:
        raise ValueError('the model produced no speech units for this sentence')
    return out['predictions'][0]['sample_rate'], np.asarray(wave, dtype=np.float32)


def classify_points(cache: ModelCache, file, classes: str):
    if file is None:
        raise ValueError('upload a point cloud or mesh file first')
    path = file if isinstance(file, str) else file.name
    kwargs = dict(texts=parse_names(classes)) if (classes or '').strip() else {}
    out = cache.get('pointcloud')(path, **kwargs)
    pred = out['predictions'][0]
    return {r['label']: r['score'] for r in pred['ranking']}, out['visualization'][0]


def guarded(fn: Callable, cache: ModelCache) -> Callable:
    """``fn(cache, *args)`` for Gradio: input errors and missing checkpoints
    become a message on the page (gr.Error) instead of a stack trace."""
    import gradio as gr

    def run(*args, progress=gr.Progress()):
        progress(0, desc='loading the model (first use) and running it')
        try:
            return fn(cache, *args)
        except (ValueError, FileNotFoundError, KeyError, TypeError) as err:
            # KeyError's str() quotes its message
            raise gr.Error(str(err.args[0]) if err.args else str(err)) from err
    run.__name__ = fn.__name__
    return run


def build_app(cache: ModelCache):
    """The Gradio Blocks app: one tab per task."""
    import gradio as gr

    with gr.Blocks(title='mmfusion demo') as app:
        gr.Markdown('# mmfusion\nOne tab per task; each loads its tiny model on first use.')
        with gr.Tab('Segmentation', id='segmentation'):
            with gr.Row():
                img = gr.Image(type='numpy', label='image', elem_id='seg-input')
                seg_out = gr.Image(type='numpy', label='overlay', format='png',
                                   elem_id='seg-output')
            classes = gr.Textbox(label='class names (comma separated)', value='person, sky',
                                 elem_id='seg-classes')
            task = gr.Radio(['semantic', 'instance', 'panoptic'], value='semantic',
                            label='task')
            seg_json = gr.JSON(label='segments')
            gr.Button('Segment', variant='primary', elem_id='seg-run').click(
                guarded(segment, cache), [img, classes, task], [seg_out, seg_json])
        with gr.Tab('Referring', id='referring'):
            with gr.Row():
                img = gr.Image(type='numpy', label='image')
                out = gr.Image(type='numpy', label='mask', format='png')
            sentence = gr.Textbox(label='sentence', value='the person on the left')
            gr.Button('Find', variant='primary').click(guarded(refer, cache), [img, sentence],
                                                        out)
        with gr.Tab('Caption', id='caption'):
            with gr.Row():
                img = gr.Image(type='numpy', label='image')
                text = gr.Textbox(label='caption')
            model = gr.Radio(['X-Decoder', 'mmMamba (linear-time student)'],
                             value='X-Decoder', label='model')
            gr.Button('Caption', variant='primary').click(guarded(caption, cache),
                                                          [img, model], text)
        with gr.Tab('Promptable (SAM)', id='sam'):
            with gr.Row():
                img = gr.Image(type='numpy', label='image')
                out = gr.Image(type='numpy', label='mask', format='png')
            box = gr.Textbox(label='box x1,y1,x2,y2 (pixels)', value='40,30,200,180')
            gr.Button('Segment', variant='primary').click(guarded(promptable, cache),
                                                          [img, box], out)
        with gr.Tab('Matting', id='matting'):
            with gr.Row():
                img = gr.Image(type='numpy', label='image')
                alpha = gr.Image(type='numpy', label='alpha', format='png')
                comp = gr.Image(type='numpy', label='composite', format='png')
            box = gr.Textbox(label='box x1,y1,x2,y2 (pixels)', value='40,30,200,180')
            gr.Button('Matte', variant='primary').click(guarded(matte, cache), [img, box],
                                                        [alpha, comp])
        with gr.Tab('Medical', id='medical'):
            with gr.Row():
                img = gr.Image(type='numpy', label='image')
                out = gr.Image(type='numpy', label='lesion', format='png')
            gr.Button('Segment', variant='primary').click(guarded(medical, cache), img, out)
        with gr.Tab('Speech recognition', id='asr'):
            audio = gr.Audio(sources=['upload', 'microphone'], type='numpy', label='speech')
            text = gr.Textbox(label='transcript')
            gr.Button('Transcribe', variant='primary').click(guarded(transcribe, cache), audio,
                                                             text)
        with gr.Tab('Text to speech', id='tts'):
            text = gr.Textbox(label='sentence', value='a red circle on a striped background')
            audio = gr.Audio(type='numpy', label='speech')
            gr.Button('Speak', variant='primary').click(guarded(speak, cache), text, audio)
        with gr.Tab('Point cloud', id='pointcloud'):
            with gr.Row():
                file = gr.File(label='points (.npy .txt .ply) or mesh (.off .obj .stl)')
                view = gr.Image(type='numpy', label='views', format='png')
            classes = gr.Textbox(label='class names (comma separated; empty: the model\'s)')
            ranking = gr.Label(label='ranking', num_top_classes=5)
            gr.Button('Classify', variant='primary').click(guarded(classify_points, cache),
                                                           [file, classes], [ranking, view])
    return app


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--host', default='127.0.0.1', help='address to serve on')
    parser.add_argument('--port', type=int, default=7860)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--random-weights', action='store_true',
                        help='build every model at random init (no checkpoints needed)')
    parser.add_argument('--share', action='store_true',
                        help='ask Gradio for a public link (needs internet)')
    from mmfusion.utils.compile import add_compile_args
    add_compile_args(parser, 'inference')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from mmfusion.utils.compile import compile_arg
    app = build_app(ModelCache(args.device, args.random_weights, compile_arg(args)))
    print(f'[web_demo] serving on http://{args.host}:{args.port}', flush=True)
    app.queue().launch(server_name=args.host, server_port=args.port, share=args.share,
                       show_error=True)


if __name__ == '__main__':
    main()
