"""The contract with stores (docs/contract.md): event models, whole-message decoding, dead
letters, and the normalised form events take inside the pipeline with their routing.

The bottom layer: it imports nothing else of salewatch, and it is all the store SDK and the
simulator may import.
"""
