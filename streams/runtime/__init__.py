"""What runs the stages: settings, topics, metrics, the batched-stage base, partitioned
tables, partition ownership, the web server, and at the top the app that wires every stage
and the alerts together (`app`) and the `salewatch` command (`cli`).
"""
