"""``python -m benchmarks speed | paths | accuracy``."""
from .cli import main

raise SystemExit(main())
