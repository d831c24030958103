"""mmfusion: a modular multimodal foundation-model toolkit on mmengine.

Importing it changes nothing in mmengine; ``mmfusion.utils.register_all_modules()``
registers the modules, the safe checkpoint loader and the atomic checkpoint backend.
"""
__version__ = '0.1.0'
