"""Named prompt-template sets for zero-shot class embeddings.

A template is a string with one ``{}`` for the class name. open_clip stores its
ImageNet templates as callables; they are turned into such strings.
"""
from typing import Callable, Dict, List, Sequence, Union

Template = Union[str, Callable[[str], str]]

SIMPLE_TEMPLATES = ('a photo of a {}.',)

SYNTHSHAPES_TEMPLATES = (
    'a {}.',
    'a photo of a {}.',
    'a {} shape.',
    'a rendering of a {}.',
)

# ViLD's 14 prompts (Gu et al., ICLR 2022), which FC-CLIP and FrozenSeg average
# per class name.
VILD_TEMPLATES = (
    'a photo of a {}.',
    'This is a photo of a {}',
    'There is a {} in the scene',
    'There is the {} in the scene',
    'a photo of a {} in the scene',
    'a photo of a small {}.',
    'a photo of a medium {}.',
    'a photo of a large {}.',
    'This is a photo of a small {}.',
    'This is a photo of a medium {}.',
    'This is a photo of a large {}.',
    'There is a small {} in the scene.',
    'There is a medium {} in the scene.',
    'There is a large {} in the scene.',
)


def _imagenet_templates() -> List[Template]:
    from mmfusion.utils.dependency import require
    open_clip = require('open_clip', "prompt templates 'imagenet'", 'open_clip_torch')
    return list(open_clip.OPENAI_IMAGENET_TEMPLATES)


def _xdecoder_templates() -> List[Template]:
    """X-Decoder's official evaluation set: the bare name with a period,
    then open_clip's 80 ImageNet templates."""
    return ['{}.'] + _imagenet_templates()


def _synthshapes3d_templates() -> List[Template]:
    from mmfusion.datasets.synthshapes3d_meta import CAPTION_TEMPLATES
    return list(CAPTION_TEMPLATES)


# Values are template sequences, or functions returning them (lazy imports).
TEMPLATE_SETS: Dict[str, Union[Sequence[Template], Callable[[], Sequence[Template]]]] = {
    'simple': SIMPLE_TEMPLATES,
    'imagenet': _imagenet_templates,
    'synthshapes': SYNTHSHAPES_TEMPLATES,
    'synthshapes3d': _synthshapes3d_templates,
    'vild': VILD_TEMPLATES,
    'xdecoder': _xdecoder_templates,
}


def get_templates(templates: Union[str, Sequence[Template]]) -> List[str]:
    """Resolve a set name or a list of templates to ``'...{}...'`` strings.

    Raises:
        ValueError: unknown set name (the message lists the known names), or a
            template without exactly one ``{}``.
    """
    if isinstance(templates, str):
        if templates not in TEMPLATE_SETS:
            raise ValueError(f'unknown prompt template set {templates!r}; known sets: '
                             f'{sorted(TEMPLATE_SETS)} (or pass a list of "...{{}}..." strings)')
        found = TEMPLATE_SETS[templates]
        templates = found() if callable(found) else found
    out = []
    for t in templates:
        # A callable template applied to '{}' gives the equivalent format string.
        text = t('{}') if callable(t) else t
        if not isinstance(text, str) or text.count('{}') != 1:
            raise ValueError(f'prompt template {t!r} must be a string with exactly one "{{}}" '
                             'or a callable taking the class name')
        out.append(text)
    if not out:
        raise ValueError('no prompt templates given')
    return out


def fill_templates(templates: Sequence[str], class_names: Sequence[str]) -> List[str]:
    """Prompts class-major: all templates of the first class, then the next."""
    # replace, not format: class names may contain braces.
    return [t.replace('{}', name) for name in class_names for t in templates]
