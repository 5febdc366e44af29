"""The twin: the signaling VM booted as a Debian 13 container from its exact user data.

`image` builds (and caches) the Debian 13 root and the local package archive the twin boots
from, `standins` the packages that only Jitsi's or Prosody's repositories have, `container`
the network namespaces, the overlay root and systemd-nspawn, `rig` puts them together.
`bridges` boots videobridge VMs beside it, with `cloud_stub` for their metadata service and
AWS's APIs.
"""
