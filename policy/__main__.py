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
    StackValidationArgs,
    StackValidationPolicy,
)

from policy.rules import RULES, STACK_RULES, Rule, StackResource, StackRule


def _description(name: str, doc: str | None) -> str:
    """The docstring's first paragraph, on one line."""
    return " ".join((doc or name).split("\n\n")[0].split())


def _validate(rule: Rule) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for message in rule(args.resource_type, args.props, args.opts.ignore_changes):
            report_violation(message, None)

    return validate


def _validate_stack(rule: StackRule) -> Callable[[StackValidationArgs, ReportViolation], None]:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        resources = [StackResource(r.resource_type, r.name, r.props) for r in args.resources]
        for message in rule(resources):
            report_violation(message, None)

    return validate


PolicyPack(
    name="jitsi-xxl",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[
        *(
            ResourceValidationPolicy(
                name=name, description=_description(name, rule.__doc__), validate=_validate(rule)
            )
            for name, rule in RULES.items()
        ),
        *(
            StackValidationPolicy(
                name=name,
                description=_description(name, rule.__doc__),
                validate=_validate_stack(rule),
            )
            for name, rule in STACK_RULES.items()
        ),
    ],
)
