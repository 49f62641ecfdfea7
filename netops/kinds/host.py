"""host: a plain network namespace with interfaces, addresses, routes and DHCP clients."""
from __future__ import annotations

from .base import NamespaceKind


class Host(NamespaceKind):
    name = "host"
    label = "Host"
    help = "A Linux network namespace"
    prefix = "h"
    palette = 2
