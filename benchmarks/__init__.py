"""The benchmarks: ``python -m benchmarks speed | paths | accuracy``, run from the repository root.

Each command measures the library (``anodfdnet``) and, where it says so, the app (``demo``, ``annotate``),
and writes its report into this folder (``SPEED.md``, ``PATHS.md``, ``ACCURACY.md``, ``ACCURACY_STEPS.md``, ``TRAINING.md``, ``SLIDER.md`` and their JSON files);
``README.md`` here says what each measures. The library never imports this package.
"""
