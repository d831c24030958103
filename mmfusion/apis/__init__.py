from .inference import (
                        build_test_pipeline,
                        inference_model,
                        init_model,
                        load_image,
                        load_weights,
                        prepare_inputs,
)
from .model_index import (
                        find_root,
                        get_model,
                        list_models,
                        load_model_index,
                        model_config,
                        model_info,
                        resolve_weights,
)
from .sequence_inferencers import (
                        ASRInferencer,
                        MambaCaptionInferencer,
                        PointCloudZeroShotInferencer,
                        TTSInferencer,
)
from .vision_inferencers import (
                        CaptionInferencer,
                        MattingInferencer,
                        MedicalSegInferencer,
                        OpenVocabSegInferencer,
                        PromptableSegInferencer,
                        ReferringSegInferencer,
                        RetrievalInferencer,
)
from .xdecoder_inferencer import XDecoderInferencer

__all__ = ['init_model', 'inference_model', 'load_image', 'load_weights', 'build_test_pipeline',
           'prepare_inputs', 'XDecoderInferencer', 'get_model', 'list_models', 'load_model_index',
           'model_info', 'model_config', 'resolve_weights', 'find_root']
__all__ += ['ASRInferencer', 'TTSInferencer', 'MambaCaptionInferencer',
            'PointCloudZeroShotInferencer']
__all__ += ['OpenVocabSegInferencer', 'ReferringSegInferencer', 'CaptionInferencer',
            'RetrievalInferencer', 'PromptableSegInferencer', 'MattingInferencer',
            'MedicalSegInferencer']
