# X-Decoder Focal-T on COCO panoptic, sharded with FSDP: the model and recipe
# of xdecoder_focalt_8xb4-50e_coco-panoptic.py, for GPUs whose memory does not
# hold a replicated model with its AdamW state at a useful batch size.
#
#   tools/dist_train.sh configs/xdecoder/xdecoder_focalt_fsdp-8xb4-50e_coco-panoptic.py 8
#
# A config with a `strategy` runs under mmengine's FlexibleRunner
# (tools/train.py picks it). The text tower is frozen here (the base recipe
# fine-tunes it at 0.1x, as the official one), so FusionFSDP leaves it out of
# the sharding (ignored_states): it is cast once to bf16 and replicated on
# each rank. Trainable parameters are wrapped per ~10M-parameter unit and
# stay fp32; bf16 autocast runs the compute. The decoder layers recompute
# their activations in the backward pass (with_cp).
# Not trained here (no GPU): the FSDP path itself is tested on CPU (gloo) in
# tests/test_engine/test_distributed.py.
_base_ = './xdecoder_focalt_8xb4-50e_coco-panoptic.py'

model = dict(
    text_encoder=dict(frozen=True, frozen_dtype='bf16'),
    head=dict(transformer_decoder=dict(with_cp=True)))

strategy = dict(
    type='FSDPStrategy',
    model_wrapper=dict(
        type='FusionFSDP',
        sharding_strategy='FULL_SHARD',
        auto_wrap_policy=dict(type='size_based_auto_wrap_policy', min_num_params=int(1e7))),
    # One ordinary checkpoint on rank 0, readable with the base config by
    # tools/test.py and the Inferencer; 'local' would write one shard per rank.
    state_dict_cfg='full')
optim_wrapper = dict(type='AmpOptimWrapper', dtype='bfloat16')
