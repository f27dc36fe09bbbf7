"""The permission layer: the policy that asks or answers each tool use, the allow rules and the
user's Claude Code settings rules.
"""
