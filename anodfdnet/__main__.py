"""``python -m anodfdnet train | evaluate | predict | export | retrain | models | specs`` (see ``cli``)."""
from .cli import main

raise SystemExit(main())
