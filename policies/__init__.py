"""Per-domain policies: the schema, the loader, and the shipped domains."""

from policies.loader import (
    SHIPPED_DIR,
    PolicyError,
    PolicyIssue,
    check_policy_file,
    check_policy_text,
    load_policies,
    load_policy,
)
from policies.schema import Action, Policy

__all__ = [
    "SHIPPED_DIR",
    "Action",
    "Policy",
    "PolicyError",
    "PolicyIssue",
    "check_policy_file",
    "check_policy_text",
    "load_policies",
    "load_policy",
]
