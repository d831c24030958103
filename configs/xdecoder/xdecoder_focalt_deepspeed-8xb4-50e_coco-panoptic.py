# X-Decoder Focal-T on COCO panoptic with DeepSpeed ZeRO-2 (optimizer state
# and gradients partitioned across ranks; bf16 compute): the model and recipe
# of xdecoder_focalt_8xb4-50e_coco-panoptic.py.
#
#   pip install deepspeed   # needs CUDA
#   tools/dist_train.sh configs/xdecoder/xdecoder_focalt_deepspeed-8xb4-50e_coco-panoptic.py 8
#
# mmengine's DeepSpeedStrategy under FlexibleRunner; GPUs only (tools/train.py
# refuses it on a CPU machine). Not trained here.
_base_ = './xdecoder_focalt_8xb4-50e_coco-panoptic.py'

model = dict(head=dict(transformer_decoder=dict(with_cp=True)))

strategy = dict(
    type='DeepSpeedStrategy',
    bf16=dict(enabled=True),
    zero_optimization=dict(stage=2, allgather_partitions=True, reduce_scatter=True,
                           allgather_bucket_size=int(5e8), reduce_bucket_size=int(5e8),
                           overlap_comm=True, contiguous_gradients=True),
    # The base recipe's clip_grad (max_norm 5.0) moves into DeepSpeed.
    gradient_clipping=5.0)
# Same optimizer and parameter groups as the base recipe, through DeepSpeed's
# wrapper (which takes no clip_grad: DeepSpeed clips, see above).
optim_wrapper = dict(_delete_=True, type='DeepSpeedOptimWrapper',
                     constructor='FusionOptimWrapperConstructor',
                     optimizer={{_base_.optim_wrapper.optimizer}},
                     paramwise_cfg={{_base_.optim_wrapper.paramwise_cfg}})
