"""netops: the Topolab engine. Topology documents in, namespaces, links, daemons and VMs out; no Django here."""
from __future__ import annotations

__all__ = ["__version__"]
__version__ = "0.1.0"
