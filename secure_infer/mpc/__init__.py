"""Two-party MPC inference of a Transformer encoder on CrypTen (plain and Ditto-style)."""
