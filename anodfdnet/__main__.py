"""``python -m anodfdnet train | evaluate | predict | inspect | export | adapt | models | specs`` (see ``cli``)."""
from .cli import main

raise SystemExit(main())
