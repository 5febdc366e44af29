"""Rendering: the one strict jinja environment, every file of each VM, cloud-init user data
and where packages come from."""
