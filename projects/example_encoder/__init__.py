"""The encoder of docs/new_model.md: a project's own module, registered into
mmfusion's MODELS registry and imported by its config through ``custom_imports``."""
from .tiny_convnet import ExampleConvNet

__all__ = ['ExampleConvNet']
