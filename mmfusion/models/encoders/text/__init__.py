from .bow_text import BagOfWordsTextEncoder
from .hf_text import HFTextEncoder
from .openclip_text import OpenCLIPTextEncoder
from .prompt_templates import TEMPLATE_SETS, get_templates

__all__ = ['BagOfWordsTextEncoder', 'HFTextEncoder', 'OpenCLIPTextEncoder', 'TEMPLATE_SETS',
           'get_templates']
