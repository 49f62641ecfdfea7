"""The one seam through which netops touches the kernel: namespaces (`netns`), rtnetlink (`netlink`), taps
(`tap`). Everything above this package is pure and testable without root."""
from __future__ import annotations
