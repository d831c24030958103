"""Vocabulary of SynthShapes3D, the procedural 3D objects world.

Written by ``tools/dataset_converters/generate_synthshapes3d.py``; configs and
tests read the class lists from here so that they agree with the generator.
A class is a base solid with a proportion modifier ("tall cone"; the regular
proportions have no word: "cone"). ``HELD_OUT`` combinations never appear in
the training or validation split, only in test: they are the open-vocabulary
(novel) categories. Every base and every modifier word is still seen in
training in other combinations (e.g. "cone" and "flat cone", "tall cube" and
"tall pyramid"), so a novel class is a new composition of known words.
"""
from typing import List

BASES: List[str] = ['sphere', 'cube', 'cylinder', 'cone', 'torus', 'pyramid']
# '' is the regular proportions (no word in the class name)
MODIFIERS: List[str] = ['tall', 'flat', '']


def class_name(base: str, modifier: str) -> str:
    """'tall cone', 'cone', 'flat cone'."""
    return f'{modifier} {base}'.strip()


CLASSES: List[str] = [class_name(b, m) for b in BASES for m in ('', 'tall', 'flat')]

# Four held-out classes on four different bases ('tall' twice, 'flat' and the
# regular proportions once): every base and every modifier keeps at least one
# combination in SEEN_CLASSES.
HELD_OUT: List[str] = ['tall cone', 'flat cube', 'sphere', 'tall torus']
SEEN_CLASSES: List[str] = [c for c in CLASSES if c not in HELD_OUT]

# Prompts for zero-shot classification and text augmentation ('{}' = class name).
CAPTION_TEMPLATES: List[str] = [
    'a {} point cloud.',
    'a 3D model of a {}.',
    'a depth map of a {}.',
    'a point cloud of a {}.',
    'a 3D scan of a {}.',
    'a CAD model of a {}.',
    'a sparse point cloud of a {}.',
    'a 3D shape of a {}.',
]
