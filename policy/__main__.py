"""jitsi-xxl policy pack (CrossGuard): `pulumi preview --policy-pack policy`.

Every rule is a plain function in rules.py; this file only hands them to CrossGuard.
"""

from collections.abc import Callable

from pulumi_policy import (
    EnforcementLevel,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

from policy.rules import RULES, Rule


def _validate(rule: Rule) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for message in rule(args.resource_type, args.props, args.opts.ignore_changes):
            report_violation(message, None)

    return validate


PolicyPack(
    name="jitsi-xxl",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[
        ResourceValidationPolicy(
            name=name,
            description=(rule.__doc__ or name).split("\n")[0],
            validate=_validate(rule),
        )
        for name, rule in RULES.items()
    ],
)
