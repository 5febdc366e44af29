"""Programs that run on the VMs as they are shipped (the bridge agent)."""
