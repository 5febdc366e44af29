"""The offline tooling: the `xxl` command, the program under Pulumi's mocks, plan reports and
per-event stacks."""
