"""DAMPER's rewriting policy: a local causal LM proposes domain-compliant replacements for private spans.

The parts, each in its own module:
- `prompt`: the few-shot chat prompt and the cleaning of what the model writes back;
- `model`: loading the base LM (SmolLM2 from its PyPI wheel, or a local directory) and its hash;
- `rewriter`: k sampled replacements per span, one batched `generate` call per request;
- `scoring`: the prototype-guided judge (privacy from the domain's prototypes, utility from an embedder);
- `pairs` and `align`: preference pairs from that judge and DPO on a LoRA adapter (no human labels);
- `artifact`: the versioned adapter directory a policy names;
- `candidates`: the candidate set and utilities the exponential mechanism draws from at request time.
"""
