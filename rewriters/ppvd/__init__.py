"""PPVD: a privacy-preserving vector store that finds and replaces memorised sensitive content in answers."""
