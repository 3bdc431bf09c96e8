"""``python -m benchmarks speed | paths | accuracy | ... | inspect`` (see ``cli``)."""
from .cli import main

raise SystemExit(main())
