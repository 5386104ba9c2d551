"""Secure-inference backends (MPC, TEE): built in later issues."""
