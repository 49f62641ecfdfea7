"""The seam through which netops touches the kernel: namespaces (`netns`), rtnetlink (`netlink`, `nlcodec`), taps
(`tap`), /proc/sys (`sysctl`), cgroups, user namespaces. `host.Kernel` is that seam as one object, which observe,
destroy, nft and linkcond receive (the real `host.Host` by default), so they are unit-tested without root."""
from __future__ import annotations
