from mmfusion.utils.config_weights import drop_weight_files


def test_drop_weight_files_everywhere_or_only_missing(tmp_path):
    here = tmp_path / 'w.pth'
    here.write_bytes(b'')

    def cfg():
        return dict(encoder=dict(checkpoint=str(here), prefix='image_encoder.'),
                    heads=[dict(sam_checkpoint=str(tmp_path / 'gone.pth'), prefix='sam.')],
                    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint='gone.pth')),
                    text=dict(pretrained=None))
    missing = cfg()
    dropped = drop_weight_files(missing, only_missing=True)
    assert missing['encoder'] == dict(checkpoint=str(here), prefix='image_encoder.')
    assert missing['heads'][0] == dict(sam_checkpoint=None, prefix=None)
    assert missing['backbone']['init_cfg'] is None
    assert dropped == [f'model.heads[0].sam_checkpoint={tmp_path / "gone.pth"}',
                       'model.backbone.init_cfg=gone.pth']
    every = cfg()
    assert len(drop_weight_files(every)) == 3
    assert every['encoder'] == dict(checkpoint=None, prefix=None)
