"""Secure-inference backends for workloads too sensitive for any cloud: 2-party MPC and TEE split inference.

Importing this package (and its `config` modules) must stay light: torch and crypten load only when a
backend starts, so policies can be validated without them.
"""
