from __future__ import annotations

import os
import sys


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
    import django

    django.setup()
    from .service import run

    return run()


if __name__ == "__main__":
    sys.exit(main())
