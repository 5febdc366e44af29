"""The Pulumi components both clouds share: DNS, firewall rules, secrets, outputs, images,
the stack's config; one folder per cloud below."""
