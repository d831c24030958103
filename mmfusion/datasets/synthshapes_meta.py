"""Vocabulary of SynthShapes, the embedded multimodal shapes world.

Written by ``tools/dataset_converters/generate_synthshapes.py``; configs and
tests read the class lists from here so that they agree with the generator.
Thing categories are colour-shape combinations ("red triangle"); stuff
categories are background textures. ``HELD_OUT`` combinations never appear
in the training split: they are the open-vocabulary (novel) categories.
"""
from typing import Dict, List, Tuple

COLOURS: Dict[str, Tuple[int, int, int]] = {
    'red': (215, 40, 40),
    'green': (40, 170, 60),
    'blue': (40, 80, 215),
    'yellow': (230, 205, 30),
    'purple': (140, 50, 190),
    'orange': (240, 130, 20),
}
SHAPES: List[str] = ['circle', 'square', 'triangle', 'star', 'cross']
STUFF_CLASSES: List[str] = ['plain background', 'striped background', 'dotted background']
SIZES: List[str] = ['small', 'large']

# One held-out shape per colour and no shape held out twice with the same
# colour, so every colour and every shape is still seen in training.
HELD_OUT: List[str] = ['red star', 'green triangle', 'blue cross', 'yellow circle',
                       'purple square', 'orange star']

THING_CLASSES: List[str] = [f'{c} {s}' for c in COLOURS for s in SHAPES]
SEEN_CLASSES: List[str] = [c for c in THING_CLASSES if c not in HELD_OUT]
# Semantic-segmentation label order: things, then stuff (as COCO panoptic).
ALL_CLASSES: List[str] = THING_CLASSES + STUFF_CLASSES
