# The ablation "without the ensemble": the decoder's own class scores only.
_base_ = ['./semantic_novel.py']
model = dict(ensemble=None)
