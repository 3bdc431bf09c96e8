"""The architectures: AnoDFDNet (``anodfdnet``) and the paper's comparison models (``baselines``)."""
