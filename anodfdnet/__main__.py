"""``python -m anodfdnet train | evaluate | predict | export | adapt | models | specs`` (see ``cli``)."""
from .cli import main

raise SystemExit(main())
