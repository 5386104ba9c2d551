"""Labelled training examples of the shipped domains, and the script that writes them."""
