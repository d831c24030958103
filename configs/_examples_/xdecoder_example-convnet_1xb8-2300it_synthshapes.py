# docs/new_model.md: the tiny X-Decoder with a new encoder. Everything but the
# backbone and the data is inherited: the pixel decoder, the X-Decoder, the
# CLIP text tower, the losses and the schedule.
_base_ = '../xdecoder/xdecoder_r18-tiny_2xb8-2300it_synthshapes.py'

# The encoder is the project's own module (projects/example_encoder), imported
# when the config is read (run from the repository root with PYTHONPATH=.).
custom_imports = dict(imports=['projects.example_encoder'], allow_failed_imports=False)

# _delete_: drop the ResNet's keys instead of merging into them. Its output
# channels (16, 32, 64, 128) are what the pixel decoder's in_channels expect.
model = dict(backbone=dict(_delete_=True, type='ExampleConvNet', widths=(16, 32, 64, 128)))
# The base loads a stage-1 checkpoint whose backbone is the ResNet: start anew.
load_from = None

# The data: the 3,000-scene SynthShapes of `make synthshapes` (one process of 8).
data_root = 'data/synthshapes'
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
