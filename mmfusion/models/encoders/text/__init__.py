from .openclip_text import OpenCLIPTextEncoder
from .prompt_templates import TEMPLATE_SETS, get_templates

__all__ = ['OpenCLIPTextEncoder', 'TEMPLATE_SETS', 'get_templates']
